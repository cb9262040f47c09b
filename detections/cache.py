"""Compiled-ruleset cache: a collector restarting on an unchanged corpus skips pySigma.

What is cached is plain data: every rule's spec (metadata + IR condition, no closures), the
correlation specs, errors and skipped rules. Loading unpickles that and recompiles the IR into
closures, which is fast. The key covers each rule file's path, size and mtime, the placeholder
configuration and :data:`ENGINE_VERSION` (bump it whenever IR or semantics change), so any edit
invalidates the entry. A corrupt or unreadable entry is ignored and rebuilt, never fatal.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from agents.errors import RuleError
from detections.pipeline import Placeholders

if TYPE_CHECKING:
    from detections.ruleset import RuleSet

ENGINE_VERSION: Final = "sekimori-sigma-3"


def cache_key(files: Sequence[Path], placeholders: Placeholders | None) -> str:
    digest = hashlib.sha256(ENGINE_VERSION.encode())
    for path in files:
        try:
            stat = path.stat()
        except OSError:
            continue
        digest.update(f"{path.absolute()}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    for name in sorted(placeholders or {}):
        digest.update(f"{name}={list((placeholders or {})[name])}\n".encode())
    return digest.hexdigest()


def cache_file(cache_dir: Path, files: Sequence[Path], placeholders: Placeholders | None) -> Path:
    return cache_dir / f"ruleset-{cache_key(files, placeholders)[:32]}.pickle"


def load_cached(
    cache_dir: Path, files: Sequence[Path], placeholders: Placeholders | None
) -> RuleSet | None:
    from detections.build import from_spec
    from detections.ruleset import RuleSet

    path = cache_file(cache_dir, files, placeholders)
    try:
        # Our own cache file, written by store_cached below with 0600 permissions.
        payload: dict[str, Any] = pickle.loads(path.read_bytes())  # noqa: S301
    except (OSError, pickle.UnpicklingError, EOFError, AttributeError, ImportError):
        return None
    if payload.get("version") != ENGINE_VERSION:
        return None
    errors = [RuleError(m, source=s, line=n, remedy=r) for m, s, n, r in payload["errors"]]
    return RuleSet(
        [from_spec(spec, lazy=True) for spec in payload["rules"]],
        errors,
        payload["skipped"],
        correlations=payload["correlations"],
    )


def store_cached(
    cache_dir: Path, files: Sequence[Path], placeholders: Placeholders | None, ruleset: RuleSet
) -> None:
    payload = {
        "version": ENGINE_VERSION,
        "rules": [rule.spec() for rule in ruleset.rules],
        "errors": [(e.message, e.source, e.line, e.remedy) for e in ruleset.errors],
        "skipped": ruleset.skipped,
        "correlations": ruleset.correlations,
    }
    target = cache_file(cache_dir, files, placeholders)
    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
        handle, temp = tempfile.mkstemp(dir=cache_dir, prefix=".ruleset-", suffix=".tmp")
        with os.fdopen(handle, "wb") as out:
            out.write(pickle.dumps(payload, protocol=pickle.HIGHEST_PROTOCOL))
        Path(temp).replace(target)
    except OSError:
        return  # a cache that cannot be written only costs start-up time
