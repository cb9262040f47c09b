"""Load Sigma rule files into a :class:`RuleSet`, collecting every problem instead of stopping.

Each file is parsed with pySigma (multi-document files, ``action: global``, filters and
correlation rules are understood); each rule is routed by logsource, goes through its pipeline
(sekimori ECS for our Linux/network kinds, identity for Windows) and is compiled. A broken file
or rule becomes a :class:`RuleError` naming the file (and line where known) and the problem; a
valid rule the engine cannot evaluate becomes a :class:`SkippedRule` with the reason; every
other rule still loads. With ``cache_dir`` the compiled result is cached (:mod:`detections.cache`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Final

import yaml
from sigma.collection import SigmaCollection
from sigma.correlations import SigmaCorrelationRule
from sigma.exceptions import SigmaRuleLocation
from sigma.filters import SigmaFilter
from sigma.rule import SigmaRule

from agents.errors import RuleError
from detections.build import COMPILE_ERRORS, Unsupported, compile_sigma_rule, problem, skipped
from detections.cache import load_cached, store_cached
from detections.correlation_spec import CorrelationSpec, correlation_spec
from detections.logsources import LogsourceRouter
from detections.model import CompiledRule, SkippedRule
from detections.pipeline import Placeholders
from detections.ruleset import RuleSet

RULE_SUFFIXES: Final = (".yml", ".yaml")
_REMEDY: Final = "see docs/rules.md for the rule format sekimori supports"


def default_rules_dir() -> Path:
    """The rule corpus shipped with sekimori (package data)."""
    return Path(__file__).resolve().parent / "rules"


def load_rules(
    paths: Sequence[Path],
    *,
    router: LogsourceRouter | None = None,
    placeholders: Placeholders | None = None,
    cache_dir: Path | None = None,
) -> RuleSet:
    """Load rule files and directories (recursively, ``*.yml``/``*.yaml``). Never raises for a
    bad rule: problems are in ``RuleSet.errors``, unsupported rules in ``RuleSet.skipped``.

    ``placeholders`` resolves ``|expand`` (``%name%``) values; ``cache_dir`` enables the
    compiled-ruleset cache (keyed by every file's path, size and mtime and the engine version).
    """
    errors: list[RuleError] = []
    files = rule_files(paths, errors)
    if cache_dir is not None and router is None:
        cached = load_cached(cache_dir, files, placeholders)
        if cached is not None:
            return cached
    loader = _Loader(router or LogsourceRouter(), placeholders, errors)
    for path in files:
        loader.read(path)
    ruleset = loader.finish()
    if cache_dir is not None and router is None:
        store_cached(cache_dir, files, placeholders, ruleset)
    return ruleset


def rule_files(paths: Iterable[Path], errors: list[RuleError]) -> list[Path]:
    """Expand files and directories into rule files, in a stable order."""
    files: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            files.extend(
                sorted(p for p in path.rglob("*") if p.suffix in RULE_SUFFIXES and p.is_file())
            )
        elif path.is_file():
            files.append(path)
        else:
            errors.append(
                RuleError("no such rule file or directory", source=str(path), remedy=_REMEDY)
            )
    return files


class _Loader:
    def __init__(
        self, router: LogsourceRouter, placeholders: Placeholders | None, errors: list[RuleError]
    ) -> None:
        self.router = router
        self.placeholders = placeholders
        self.errors = errors
        self.skipped: list[SkippedRule] = []
        self.parsed: list[tuple[Path, str, SigmaRule]] = []
        self.correlations: list[tuple[Path, str, SigmaCorrelationRule]] = []
        self.filters: list[tuple[Path, SigmaFilter]] = []
        self.seen: dict[str, Path] = {}

    def read(self, path: Path) -> None:
        try:
            text = path.read_text(encoding="utf-8")
            documents = list(yaml.safe_load_all(text))
        except (OSError, UnicodeDecodeError) as exc:
            self._error(path, f"cannot read rule file: {exc}")
            return
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            detail = getattr(exc, "problem", None) or str(exc)
            self._error(path, f"invalid YAML: {detail}", line=mark.line + 1 if mark else None)
            return
        bad = [i for i, doc in enumerate(documents, 1) if not isinstance(doc, Mapping | None)]
        if bad:
            self._error(path, f"YAML document {bad[0]} is not a mapping (a Sigma rule is one)")
            return
        try:
            collection = SigmaCollection.from_dicts(
                [doc for doc in documents if doc is not None],
                collect_errors=True,
                source=SigmaRuleLocation(path),
                collect_filters=True,
                resolve_references=False,
            )
        except COMPILE_ERRORS as exc:
            self._error(path, problem(exc))
            return
        for error in collection.errors:
            self._error(path, problem(error))
        for rule in collection.rules:
            if rule.errors:
                continue  # already reported through collection.errors
            if isinstance(rule, SigmaCorrelationRule):
                self.correlations.append((path, text, rule))
            elif isinstance(rule, SigmaRule):
                self.parsed.append((path, text, rule))
        self.filters.extend((path, f) for f in collection.filters if not f.errors)

    def finish(self) -> RuleSet:
        compiled: list[CompiledRule] = []
        for path, text, rule in self.parsed:
            for filter_path, sigma_filter in self.filters:
                try:
                    sigma_filter.apply_on_rule(rule)
                except COMPILE_ERRORS as exc:
                    self._error(filter_path, f"filter {sigma_filter.title!r}: {problem(exc)}")
            result = self._compile(path, text, rule)
            if result is not None:
                compiled.append(result)
        correlations: list[CorrelationSpec] = []
        for path, text, corr in self.correlations:
            try:
                correlations.append(correlation_spec(corr, path, compiled, self.correlations))
            except RuleError as exc:
                line = _line_of(text, str(corr.id) if corr.id else corr.title)
                self._error(path, f"correlation {corr.title!r}: {exc.message}", line=line)
        return RuleSet(compiled, self.errors, self.skipped, correlations=correlations)

    def _compile(self, path: Path, text: str, rule: SigmaRule) -> CompiledRule | None:
        line = _line_of(text, str(rule.id) if rule.id else rule.title)
        if rule.id is None:
            self._error(
                path, f"rule {rule.title!r} has no id", line=line, remedy="add `id: <uuid4>`"
            )
            return None
        rule_id = str(rule.id)
        if rule_id in self.seen:
            self._error(
                path,
                f"rule {rule.title!r}: duplicate id {rule_id} (first loaded from "
                f"{self.seen[rule_id]})",
                line=line,
                remedy="give each rule its own UUID",
            )
            return None
        self.seen[rule_id] = path
        route = self.router.route(rule.logsource)
        if not route.supported:
            detail = route.reason or "unsupported logsource"
            self.skipped.append(skipped(rule, path, "unsupported_logsource", detail))
            return None
        try:
            return compile_sigma_rule(rule, route, path, self.placeholders)
        except Unsupported as exc:
            self.skipped.append(skipped(rule, path, "unsupported_feature", str(exc)))
        except COMPILE_ERRORS as exc:
            self._error(path, f"rule {rule.title!r}: {problem(exc)}", line=line)
        return None

    def _error(
        self, path: Path, message: str, *, line: int | None = None, remedy: str = _REMEDY
    ) -> None:
        self.errors.append(RuleError(message, source=str(path), line=line, remedy=remedy))


def _line_of(text: str, needle: str | None) -> int | None:
    """1-based line of the first occurrence of ``needle`` (a rule id or title), if any."""
    if not needle:
        return None
    for number, line in enumerate(text.splitlines(), 1):
        if needle in line:
            return number
    return None
