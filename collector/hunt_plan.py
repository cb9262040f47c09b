"""Plan one retro-hunt query per rule: Sigma -> the store's query language, or a scan.

A rule is converted with the pySigma backend for the store's dialect (SQL for SQLite, Lucene
for OpenSearch/Elasticsearch) after the engine's field mapping (``sekimori_pipeline``). The
query only *selects candidates*: every candidate is confirmed by the streaming matcher, so a
query that matches too much costs time, never a false alert. A query that could match too
*little* is not used; the rule falls back to scanning the events of its kinds instead:

- the conversion fails, or the rule cannot be found in its file again;
- a keyword (field-less) search, a field reference, or a field outside our mapped ECS fields
  (an unmapped field is in ``_source`` but not searchable);
- on Lucene: a regular expression (Lucene's regex dialect has no ``\\b``, ``\\s``, ``(?i)``...);
- on SQLite: a list-valued field (stored as a JSON array in the view's column).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Final, Literal

from agents.schema import FIELD_TYPES
from collector.store.base import HuntDialect
from collector.store.search_mapping import CI, STRING_FIELDS
from detections import CompiledRule, sekimori_pipeline

Strategy = Literal["query", "scan"]
SQL_PREFIX: Final = "SELECT * FROM logs WHERE "
LIST_FIELDS: Final = frozenset(
    path for path, kind in FIELD_TYPES.items() if kind.startswith("list")
)


@dataclass(frozen=True, slots=True, kw_only=True)
class HuntPlan:
    rule_id: str
    title: str
    kinds: tuple[str, ...]
    strategy: Strategy
    condition: str | None  # the native query when strategy == "query"
    reason: str  # why this strategy

    def to_json(self) -> dict[str, Any]:
        return {
            "rule_id": self.rule_id,
            "title": self.title,
            "kinds": list(self.kinds),
            "strategy": self.strategy,
            "condition": self.condition,
            "reason": self.reason,
        }


@lru_cache(maxsize=1024)
def _source_text(path: Path, mtime_ns: int) -> str:  # noqa: ARG001 - part of the cache key
    return path.read_text(encoding="utf-8")


def _sigma_rule(rule: CompiledRule) -> Any:
    from sigma.collection import SigmaCollection

    text = _source_text(rule.source, rule.source.stat().st_mtime_ns)
    for candidate in SigmaCollection.from_yaml(text).rules:
        if str(getattr(candidate, "id", "")) == rule.rule_id:
            return candidate
    return None


def _items(detection: Any) -> Iterator[Any]:
    from sigma.rule import SigmaDetection

    for item in detection.detection_items:
        if isinstance(item, SigmaDetection):
            yield from _items(item)
        else:
            yield item


def _unsafe(rule: Any, dialect: HuntDialect) -> str | None:
    """Why a query for this (pipeline-processed) rule could miss events, or None."""
    from sigma.types import SigmaFieldReference, SigmaRegularExpression

    for detection in rule.detection.detections.values():
        for item in _items(detection):
            field = item.field
            if field is None:
                return "keyword (field-less) search"
            if field not in FIELD_TYPES:
                return f"field {field!r} is not a mapped ECS field"
            for value in item.value:
                if isinstance(value, SigmaFieldReference):
                    return "field reference"
                if dialect != "sqlite" and isinstance(value, SigmaRegularExpression):
                    return "regular expression (Lucene regex is a different dialect)"
            if dialect == "sqlite" and field in LIST_FIELDS:
                return f"list field {field!r}"
    return None


def _backend(dialect: HuntDialect) -> Any:
    from sigma.processing.pipeline import ProcessingItem, ProcessingPipeline
    from sigma.processing.transformations import FieldMappingTransformation

    if dialect == "sqlite":
        from sigma.backends.sqlite.sqlite import sqliteBackend

        return sqliteBackend(sekimori_pipeline())  # type: ignore[no-untyped-call]
    to_ci: dict[str | None, str | list[str]] = {f: f"{f}.{CI}" for f in STRING_FIELDS}
    ci = ProcessingPipeline(
        name="sekimori_case_insensitive_subfields",
        priority=90,
        items=[ProcessingItem(identifier="ci", transformation=FieldMappingTransformation(to_ci))],
    )
    pipeline = sekimori_pipeline() + ci
    if dialect == "opensearch":
        from sigma.backends.opensearch.opensearch import OpensearchLuceneBackend

        return OpensearchLuceneBackend(pipeline)
    from sigma.backends.elasticsearch.elasticsearch_lucene import LuceneBackend

    return LuceneBackend(pipeline)


def plan_rule(rule: CompiledRule, dialect: HuntDialect) -> HuntPlan:
    from sigma.exceptions import SigmaError

    kinds = tuple(sorted(rule.kinds))

    def scan(reason: str) -> HuntPlan:
        return HuntPlan(
            rule_id=rule.rule_id,
            title=rule.title,
            kinds=kinds,
            strategy="scan",
            condition=None,
            reason=reason,
        )

    try:
        checked = _sigma_rule(rule)
        if checked is None:
            return scan(f"rule id not found again in {rule.source}")
        sekimori_pipeline().apply(checked)
        problem = _unsafe(checked, dialect)
        if problem is not None:
            return scan(problem)
        queries = _backend(dialect).convert_rule(_sigma_rule(rule))
    except (SigmaError, OSError) as exc:
        return scan(f"conversion failed: {exc}")
    texts = [str(query) for query in queries]
    if not texts:
        return scan("the backend produced no query")
    if dialect == "sqlite":
        if not all(text.startswith(SQL_PREFIX) for text in texts):
            return scan("unexpected SQL shape from the backend")
        texts = [text.removeprefix(SQL_PREFIX) for text in texts]
    condition = " OR ".join(f"({text})" for text in texts)
    return HuntPlan(
        rule_id=rule.rule_id,
        title=rule.title,
        kinds=kinds,
        strategy="query",
        condition=condition,
        reason=f"pySigma {dialect} backend",
    )
