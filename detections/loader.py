"""Load Sigma rule files into a :class:`RuleSet`, collecting every problem instead of stopping.

Each file is parsed with pySigma (multi-document files, ``action: global``, filters and
correlation rules are understood), each rule goes through the sekimori field-mapping pipeline
and is compiled to a predicate. A broken file or rule becomes a :class:`RuleError` naming the
file (and line where known) and the problem; every other rule still loads.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Final

import yaml
from sigma.collection import SigmaCollection
from sigma.correlations import SigmaCorrelationRule
from sigma.exceptions import SigmaError, SigmaRuleLocation
from sigma.filters import SigmaFilter
from sigma.rule import SigmaRule

from agents.errors import RuleError
from detections.compiler import compile_condition
from detections.logsources import LogsourceRouter
from detections.model import DEFAULT_LEVEL, LEVELS, CompiledRule, EventPredicate, Level, SkippedRule
from detections.pipeline import sekimori_pipeline
from detections.ruleset import RuleSet

RULE_SUFFIXES: Final = (".yml", ".yaml")
_REMEDY: Final = "see docs/rules.md for the rule format sekimori supports"
# Errors a rule can raise while being processed or compiled (SigmaError is a ValueError).
_COMPILE_ERRORS: Final = (SigmaError, RuleError, ValueError, TypeError, re.error)


def default_rules_dir() -> Path:
    """The rule corpus shipped with sekimori (package data)."""
    return Path(__file__).resolve().parent / "rules"


def load_rules(paths: Sequence[Path], *, router: LogsourceRouter | None = None) -> RuleSet:
    """Load rule files and directories (recursively, ``*.yml``/``*.yaml``). Never raises for a
    bad rule: problems are in ``RuleSet.errors``, unsupported rules in ``RuleSet.skipped``."""
    loader = _Loader(router or LogsourceRouter())
    for path in rule_files(paths, loader.errors):
        loader.read(path)
    return loader.finish()


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
    def __init__(self, router: LogsourceRouter) -> None:
        self.router = router
        self.pipeline = sekimori_pipeline()
        self.errors: list[RuleError] = []
        self.skipped: list[SkippedRule] = []
        self.parsed: list[tuple[Path, str, SigmaRule]] = []
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
            problem = getattr(exc, "problem", None) or str(exc)
            line = mark.line + 1 if mark is not None else None
            self._error(path, f"invalid YAML: {problem}", line=line)
            return
        bad = [i for i, doc in enumerate(documents, 1) if not isinstance(doc, Mapping | None)]
        if bad:
            self._error(path, f"YAML document {bad[0]} is not a mapping (a Sigma rule is one)")
            return
        try:
            collection = SigmaCollection.from_dicts(
                documents,
                collect_errors=True,
                source=SigmaRuleLocation(path),
                collect_filters=True,
                resolve_references=False,
            )
        except _COMPILE_ERRORS as exc:
            self._error(path, _problem(exc))
            return
        for error in collection.errors:
            self._error(path, _problem(error), line=_line_of(text, None))
        for rule in collection.rules:
            if rule.errors:
                continue  # already reported through collection.errors
            if isinstance(rule, SigmaCorrelationRule):
                self.skipped.append(
                    SkippedRule(
                        rule_id=str(rule.id) if rule.id else None,
                        title=rule.title,
                        source=path,
                        reason="correlation_rule",
                        detail="correlation rules are not evaluated by the streaming engine yet",
                    )
                )
            elif isinstance(rule, SigmaRule):
                self.parsed.append((path, text, rule))
        self.filters.extend((path, f) for f in collection.filters if not f.errors)

    def finish(self) -> RuleSet:
        compiled: list[CompiledRule] = []
        for path, text, rule in self.parsed:
            for filter_path, sigma_filter in self.filters:
                try:
                    sigma_filter.apply_on_rule(rule)
                except _COMPILE_ERRORS as exc:
                    self._error(filter_path, f"filter {sigma_filter.title!r}: {_problem(exc)}")
            result = self._compile(path, text, rule)
            if result is not None:
                compiled.append(result)
        return RuleSet(compiled, self.errors, self.skipped)

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
            self.skipped.append(
                SkippedRule(
                    rule_id=rule_id,
                    title=rule.title,
                    source=path,
                    reason="unsupported_logsource",
                    detail=route.reason or "unsupported logsource",
                )
            )
            return None
        fields: set[str] = set()
        try:
            self.pipeline.apply(rule)
            predicates = [
                compile_condition(condition.parse(), fields)
                for condition in rule.detection.parsed_condition
            ]
        except _COMPILE_ERRORS as exc:
            self._error(path, f"rule {rule.title!r}: {_problem(exc)}", line=line)
            return None
        return CompiledRule(
            rule_id=rule_id,
            title=rule.title,
            level=_level(rule),
            tags=tuple(str(tag) for tag in rule.tags),
            description=(rule.description or "").strip(),
            source=path,
            kinds=route.kinds,
            logsource=(rule.logsource.category, rule.logsource.product, rule.logsource.service),
            fields=tuple(sorted(fields)),
            predicate=_any(predicates),
        )

    def _error(
        self, path: Path, message: str, *, line: int | None = None, remedy: str = _REMEDY
    ) -> None:
        self.errors.append(RuleError(message, source=str(path), line=line, remedy=remedy))


def _any(predicates: Sequence[EventPredicate]) -> EventPredicate:
    if len(predicates) == 1:
        return predicates[0]
    frozen = tuple(predicates)
    return lambda event: any(pred(event) for pred in frozen)


def _level(rule: SigmaRule) -> Level:
    if rule.level is None:
        return DEFAULT_LEVEL
    name = rule.level.name.lower()
    for level in LEVELS:
        if level == name:
            return level
    return DEFAULT_LEVEL


def _problem(exc: BaseException) -> str:
    if isinstance(exc, RuleError):
        return exc.message
    detail = str(exc.args[0]) if exc.args else type(exc).__name__
    return f"{detail} ({type(exc).__name__})"


def _line_of(text: str, needle: str | None) -> int | None:
    """1-based line of the first occurrence of ``needle`` (a rule id or title), if any."""
    if not needle:
        return None
    for number, line in enumerate(text.splitlines(), 1):
        if needle in line:
            return number
    return None
