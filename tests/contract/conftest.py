"""One store contract, every implementation: sqlite, opensearch, elasticsearch.

The search-engine nodes are real (tests/nodes.py), started once per session on first use and
stopped at the end. A node that cannot start FAILS the tests that need it; nothing skips.
Each test gets fresh indices under its own prefix, deleted afterwards.
"""

from __future__ import annotations

import shutil
import sqlite3
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from collector.store import open_store
from collector.store.base import Store
from tests.nodes import Node, NodeError, start_node

ENGINES = ("opensearch", "elasticsearch")
ALL_STORES = ("sqlite", *ENGINES)


def pytest_configure(config: pytest.Config) -> None:
    for engine in ENGINES:
        config.addinivalue_line("markers", f"{engine}: needs a real {engine} node (tests/nodes.py)")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        callspec = getattr(item, "callspec", None)
        kind = callspec.params.get("store_kind") if callspec else None
        if kind in ENGINES:
            item.add_marker(getattr(pytest.mark, kind))


class _Nodes:
    def __init__(self) -> None:
        self.nodes: dict[str, Node] = {}
        self.errors: dict[str, str] = {}
        self.dirs: list[str] = []

    def get(self, engine: str) -> Node:
        if engine in self.errors:
            pytest.fail(
                f"{engine} node did not start (see the first failure):\n{self.errors[engine]}"
            )
        if engine not in self.nodes:
            workdir = tempfile.mkdtemp(prefix=f"sekimori-{engine}-")
            self.dirs.append(workdir)
            try:
                self.nodes[engine] = start_node(engine, Path(workdir))
            except NodeError as exc:
                self.errors[engine] = str(exc)
                pytest.fail(f"{engine} node did not start:\n{exc}")
        return self.nodes[engine]

    def stop(self) -> None:
        for node in self.nodes.values():
            node.stop()
        for workdir in self.dirs:
            shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture(scope="session")
def nodes() -> Iterator[_Nodes]:
    pool = _Nodes()
    yield pool
    pool.stop()


@dataclass
class Harness:
    """A store under test plus the back doors a test needs (tampering, raw access)."""

    kind: str
    store: Store
    url: str
    db_path: Path | None = None

    def tamper_triage(self, seq: int, detail: dict[str, Any] | None) -> None:
        """Edit (detail) or delete (None) one ledger record behind the store's back."""
        if self.db_path is not None:
            raw = sqlite3.connect(self.db_path)
            if detail is None:
                raw.execute("DELETE FROM triage WHERE seq = ?", (seq,))
            else:
                import json

                raw.execute("UPDATE triage SET detail = ? WHERE seq = ?", (json.dumps(detail), seq))
            raw.commit()
            raw.close()
            return
        transport = self.store.transport  # type: ignore[attr-defined]
        index = self.store.layout.triage  # type: ignore[attr-defined]
        if detail is None:
            transport.request("DELETE", f"/{index}/_doc/{seq}", params={"refresh": "true"})
        else:
            transport.request(
                "POST",
                f"/{index}/_update/{seq}",
                params={"refresh": "true"},
                body={"doc": {"detail": detail}},
            )


def open_harness(kind: str, nodes: _Nodes, tmp_path: Path, **options: Any) -> Harness:
    if kind == "sqlite":
        path = tmp_path / "contract.db"
        return Harness(kind, open_store(f"sqlite://{path}"), f"sqlite://{path}", path)
    node = nodes.get(kind)
    url = f"{kind}+{node.url}"
    prefix = f"t{uuid.uuid4().hex[:10]}"
    return Harness(kind, open_store(url, prefix=prefix, **options), url)


def close_harness(harness: Harness) -> None:
    if harness.kind != "sqlite":
        prefix = harness.store.layout.prefix  # type: ignore[attr-defined]
        transport = harness.store.transport  # type: ignore[attr-defined]
        transport.request("DELETE", f"/{prefix}-*")
        transport.request("DELETE", f"/_index_template/{prefix}-events")
    harness.store.close()


@pytest.fixture(params=ALL_STORES)
def store_kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def harness(store_kind: str, nodes: _Nodes, tmp_path: Path) -> Iterator[Harness]:
    opened = open_harness(store_kind, nodes, tmp_path)
    yield opened
    close_harness(opened)


@pytest.fixture
def store(harness: Harness) -> Store:
    return harness.store
