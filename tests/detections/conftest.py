"""Helpers for detection tests: write a rule to a temp dir, build nested events."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from agents.schema import set_path
from detections import CompiledRule, RuleSet, load_rules

RuleFactory = Callable[..., CompiledRule]


def make_event(kind: str = "process_start", **fields: Any) -> dict[str, Any]:
    """A nested ECS event; keyword names use ``__`` for dots (process__command_line)."""
    event: dict[str, Any] = {"event": {"id": "ev-1"}, "sekimori": {"kind": kind}}
    for name, value in fields.items():
        set_path(event, name.replace("__", "."), value)
    return event


def rule_yaml(
    detection: dict[str, Any],
    *,
    logsource: dict[str, str] | None = None,
    title: str = "test rule",
    rule_id: str | None = None,
    **extra: Any,
) -> str:
    body: dict[str, Any] = {
        "title": title,
        "id": rule_id or str(uuid.uuid4()),
        "status": "test",
        "logsource": logsource or {"category": "process_creation", "product": "linux"},
        "detection": detection,
        "level": "high",
        **extra,
    }
    return yaml.safe_dump(body, sort_keys=False)


@pytest.fixture
def load_one(tmp_path: Path) -> Callable[..., RuleSet]:
    counter = iter(range(1_000_000))

    def load(detection: dict[str, Any], **kwargs: Any) -> RuleSet:
        path = tmp_path / f"rule_{next(counter)}.yml"
        path.write_text(rule_yaml(detection, **kwargs), encoding="utf-8")
        return load_rules([path])

    return load


@pytest.fixture
def compile_rule(load_one: Callable[..., RuleSet]) -> RuleFactory:
    def compile_(detection: dict[str, Any], **kwargs: Any) -> CompiledRule:
        ruleset = load_one(detection, **kwargs)
        assert not ruleset.errors, [str(e) for e in ruleset.errors]
        assert len(ruleset) == 1, ruleset.skipped
        return ruleset.rules[0]

    return compile_


SHARED = Path(__file__).resolve().parents[2].parent / "shared"
SIGMA_ROOT = SHARED / "sigma"
CORPUS_DIRS = ("rules", "rules-emerging-threats", "rules-threat-hunting")


def require_shared(path: Path) -> Path:
    """Data in ../shared is part of the test contract: fail loudly when it is missing."""
    if not path.exists():
        pytest.fail(f"{path} is missing: tests need the shared/ folder beside the repository")
    return path


@pytest.fixture(scope="session")
def sigma_corpus(tmp_path_factory: pytest.TempPathFactory) -> RuleSet:
    """The whole SigmaHQ corpus from ../shared/sigma, loaded once per session."""
    root = require_shared(SIGMA_ROOT)
    return load_rules([root / name for name in CORPUS_DIRS])
