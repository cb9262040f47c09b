"""Convert rules to store queries with the pySigma backends (``sekimori rules convert``).

Fully offline: only backends and pipelines that ship with the installed packages are used; no
plugin directory or MITRE data is fetched. Pipelines: our Linux/network rules go through the
sekimori ECS pipeline; Windows rules through pySigma's ``ecs_windows`` for Elasticsearch /
OpenSearch targets (Winlogbeat field names), and unchanged for ``sqlite`` (the flat Sysmon
field names of the events sekimori stores from EVTX/JSON scans). A rule that a backend cannot
express becomes a :class:`ConvertedRule` with ``error`` set; the others still convert.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Literal, get_args

import yaml
from sigma.collection import SigmaCollection
from sigma.processing.pipeline import ProcessingPipeline
from sigma.rule import SigmaRule

from agents.errors import ConfigError
from detections.build import COMPILE_ERRORS, problem
from detections.loader import rule_files
from detections.logsources import LogsourceRouter
from detections.pipeline import sekimori_pipeline

Target = Literal["lucene", "esql", "eql", "opensearch", "sqlite"]
TARGETS: Final[tuple[str, ...]] = get_args(Target)


@dataclass(frozen=True, slots=True, kw_only=True)
class ConvertedRule:
    rule_id: str | None
    title: str
    source: Path
    target: str
    queries: tuple[str, ...]
    error: str | None = None


def backend_for(target: str, pipeline: ProcessingPipeline | None) -> Any:
    """A fresh pySigma backend for ``target`` with ``pipeline`` (None: the backend default)."""
    if target in ("lucene", "esql", "eql"):
        from sigma.backends.elasticsearch import (  # type: ignore[attr-defined]
            EqlBackend,
            ESQLBackend,
            LuceneBackend,
        )

        cls: Any = {"lucene": LuceneBackend, "esql": ESQLBackend, "eql": EqlBackend}[target]
    elif target == "opensearch":
        from sigma.backends.opensearch import (  # type: ignore[attr-defined]
            OpensearchLuceneBackend,
        )

        cls = OpensearchLuceneBackend
    elif target == "sqlite":
        from sigma.backends.sqlite import sqliteBackend  # type: ignore[attr-defined]

        return sqliteBackend(processing_pipeline=pipeline, collate_nocase=True)  # type: ignore[no-untyped-call]
    else:
        raise ConfigError(
            f"unknown conversion target {target!r}", remedy=f"use one of: {', '.join(TARGETS)}"
        )
    return cls(processing_pipeline=pipeline)


def pipeline_for_rule(rule: SigmaRule, target: str) -> ProcessingPipeline | None:
    route = LogsourceRouter().route(rule.logsource)
    if route.kinds:
        return sekimori_pipeline()
    if target == "sqlite":
        return None
    from sigma.pipelines.elasticsearch.windows import ecs_windows

    return ecs_windows()


def convert_rules(paths: Sequence[Path], target: Target) -> list[ConvertedRule]:
    """Every rule under ``paths`` converted for ``target`` (one entry per rule, in file order)."""
    if target not in TARGETS:
        raise ConfigError(
            f"unknown conversion target {target!r}", remedy=f"use one of: {', '.join(TARGETS)}"
        )
    converted: list[ConvertedRule] = []
    for path in rule_files(paths, []):
        try:
            text = path.read_text(encoding="utf-8")
            docs = [d for d in yaml.safe_load_all(text) if d is not None]
            collection = SigmaCollection.from_dicts(docs, collect_errors=True)
        except (OSError, UnicodeDecodeError, yaml.YAMLError, *COMPILE_ERRORS) as exc:
            converted.append(
                ConvertedRule(
                    rule_id=None,
                    title=path.name,
                    source=path,
                    target=target,
                    queries=(),
                    error=f"cannot parse: {exc}",
                )
            )
            continue
        for rule in collection.rules:
            if isinstance(rule, SigmaRule):
                converted.append(_convert_one(rule, path, target))
    return converted


def _convert_one(rule: SigmaRule, path: Path, target: str) -> ConvertedRule:
    rule_id = str(rule.id) if rule.id else None
    if rule.errors:
        return ConvertedRule(
            rule_id=rule_id, title=rule.title, source=path, target=target, queries=(),
            error="; ".join(problem(e) for e in rule.errors),
        )  # fmt: skip
    try:
        backend = backend_for(target, pipeline_for_rule(rule, target))
        queries = backend.convert(SigmaCollection([rule]))
    except (*COMPILE_ERRORS, NotImplementedError) as exc:  # a backend's "cannot express"
        return ConvertedRule(
            rule_id=rule_id, title=rule.title, source=path, target=target, queries=(),
            error=problem(exc),
        )  # fmt: skip
    return ConvertedRule(
        rule_id=rule_id,
        title=rule.title,
        source=path,
        target=target,
        queries=tuple(str(q) for q in queries),
    )
