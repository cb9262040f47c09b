"""Offline scanning: evaluate rules over log files (``sekimori rules scan``).

``scan_files`` reads each input (:mod:`detections.readers`: EVTX, JSON, JSON lines, gzip, zip),
matches every event against the rule set (logsource routing included) and feeds the
correlation engine, yielding one :class:`ScanMatch` per hit in input order (correlation hits
when their window completes, and the rest at the end of the scan).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from detections.correlation import CorrelationEngine, CorrelationMatch
from detections.loader import default_rules_dir, load_rules
from detections.pipeline import Placeholders
from detections.readers import iter_events_raw
from detections.ruleset import RuleSet

# progress(file, events read so far in this file, finished?) every PROGRESS_EVERY events.
Progress = Callable[[Path, int, bool], None]
PROGRESS_EVERY: Final = 10_000


@dataclass(frozen=True, slots=True, kw_only=True)
class ScanMatch:
    """One rule (or correlation) hit in an input file."""

    file: str
    index: int  # 0-based position of the event in its file (-1 for correlations)
    rule_id: str
    rule_title: str
    level: str
    tags: tuple[str, ...]
    event: Mapping[str, Any]  # the event (correlations: the group-by values and counts)
    correlation: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "file": self.file,
            "index": self.index,
            "rule_id": self.rule_id,
            "rule_title": self.rule_title,
            "level": self.level,
            "tags": list(self.tags),
            "correlation": self.correlation,
            "event": dict(self.event),
        }


def scan_files(
    rule_paths: Sequence[Path],
    files: Iterable[Path],
    *,
    ruleset: RuleSet | None = None,
    progress: Progress | None = None,
    placeholders: Placeholders | None = None,
    cache_dir: Path | None = None,
    lateness: float = 0.0,
) -> Iterator[ScanMatch]:
    """Every match of the rules (``rule_paths``, default: the shipped rules; or a preloaded
    ``ruleset``) over ``files``. Unreadable input raises :class:`agents.errors.InputError`."""
    if ruleset is None:
        ruleset = load_rules(
            list(rule_paths) or [default_rules_dir()],
            placeholders=placeholders,
            cache_dir=cache_dir,
        )
    engine = CorrelationEngine(ruleset, lateness=lateness) if ruleset.correlations else None
    silent = ruleset.silent
    for path in files:
        label = str(path)
        index = -1
        for index, (event, raw) in enumerate(iter_events_raw(path)):
            fired = ruleset.fired(event, raw)
            for rule in fired:
                if rule.rule_id not in silent:
                    yield ScanMatch(
                        file=label, index=index, rule_id=rule.rule_id, rule_title=rule.title,
                        level=rule.level, tags=rule.tags, event=event,
                    )  # fmt: skip
            if engine is not None:
                hits = [r.rule_id for r in fired]
                yield from _correlated(label, engine.feed(hits, event) if hits else [])
            if progress is not None and index % PROGRESS_EVERY == PROGRESS_EVERY - 1:
                progress(path, index + 1, False)
        if progress is not None:
            progress(path, index + 1, True)
    if engine is not None:
        yield from _correlated("", engine.flush())


def _correlated(label: str, matches: Iterable[CorrelationMatch]) -> Iterator[ScanMatch]:
    for match in matches:
        yield ScanMatch(
            file=label,
            index=-1,
            rule_id=match.corr_id,
            rule_title=match.title,
            level=match.level,
            tags=match.tags,
            event={
                "group": dict(match.group),
                "count": match.count,
                "first_seen": match.first_seen,
                "last_seen": match.last_seen,
                "type": match.type,
            },
            correlation=True,
        )
