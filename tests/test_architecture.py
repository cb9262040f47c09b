"""The dependency direction of DESIGN.md: cli -> playbooks -> collector -> detections -> agents.

Two checks: import-linter's layers contract over the whole tree (pyproject.toml), and a
run-time check that importing every agent module pulls in no third-party or upper-layer
module (the agent must stay small enough for thousands of staff PCs).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
# Third-party packages the agent may load: cryptography (enrollment keys and CSRs) and what
# it pulls in. Everything else it imports must be the standard library or agents itself.
AGENT_THIRD_PARTY_ALLOWED = frozenset({"cryptography", "cffi", "_cffi_backend"})
FORBIDDEN_IN_AGENT = (
    "collector",
    "detections",
    "playbooks",
    "cli",
    "click",
    "sigma",
    "aiohttp",
    "orjson",
    "yaml",
    "rich",
    "opensearchpy",
    "elasticsearch",
    "pandas",
    "scapy",
)


def test_layers_contract_holds() -> None:
    lint = Path(sys.executable).with_name("lint-imports")
    result = subprocess.run(
        [str(lint), str(REPO / "pyproject.toml")],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 kept, 0 broken" in result.stdout


def test_agent_runtime_imports_only_the_standard_library() -> None:
    probe = """
import importlib, pkgutil, sys, agents
for info in pkgutil.walk_packages(agents.__path__, "agents."):
    importlib.import_module(info.name)
print("\\n".join(sorted(sys.modules)))
"""
    result = subprocess.run(
        [sys.executable, "-c", probe], cwd=REPO, capture_output=True, text=True, check=True
    )
    loaded = {name.split(".")[0] for name in result.stdout.split()}
    assert "agents" in loaded
    bad = sorted(loaded & set(FORBIDDEN_IN_AGENT))
    assert bad == [], f"agent runtime pulls in {bad}"
    third_party = {
        name
        for name in loaded - set(sys.stdlib_module_names) - {"agents", "__main__"}
        if not name.startswith("_") or name == "_cffi_backend"
    }
    assert third_party <= AGENT_THIRD_PARTY_ALLOWED, sorted(third_party - AGENT_THIRD_PARTY_ALLOWED)


def test_nothing_imports_the_cli() -> None:
    offenders = [
        str(path.relative_to(REPO))
        for package in ("agents", "collector", "detections", "playbooks")
        for path in (REPO / package).rglob("*.py")
        if any(
            line.strip() == "import cli" or line.strip().startswith(("import cli ", "from cli "))
            for line in path.read_text(encoding="utf-8").splitlines()
        )
    ]
    assert offenders == []


def test_lint_and_types_are_clean() -> None:
    """CI runs exactly what a developer runs: ruff (lint + format) and mypy --strict."""
    bin_dir = Path(sys.executable).parent
    for command in (
        [str(bin_dir / "ruff"), "check", "."],
        [str(bin_dir / "ruff"), "format", "--check", "."],
        [str(bin_dir / "mypy")],
    ):
        result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, check=False)
        assert result.returncode == 0, f"{' '.join(command)}:\n{result.stdout}{result.stderr}"
