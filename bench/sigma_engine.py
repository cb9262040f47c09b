"""Benchmark: SigmaHQ Windows rules over the OTRF Windows datasets, sekimori vs pySigma-sqlite.

    .venv/bin/python bench/sigma_engine.py [--baseline-events 20000] [--files N] [--cpu 0]

1. Unzips ../shared/datasets/otrf/atomic/windows/**.zip into a temporary folder (not timed).
2. sekimori (one core: the process pins itself to ``--cpu``; end to end): read + parse
   (orjson) + route + match + write every match as a JSON line; events/s and peak RSS of the
   process. Each event is matched with its JSON line (``RuleSet.fired(event, line)``), so the
   prefilter can search substring anchors in the raw bytes with hyperscan when it is
   installed (pure-Python prefilter otherwise: same matches). The compiled ruleset comes from
   the cache (built first if absent; that build is reported separately).
3. Baseline, same run: the pySigma sqlite-backend approach on the first N events: convert every
   Windows rule with ``sigma.backends.sqlite``, load the events into SQLite, run each query
   restricted to the rule's (Channel, EventID) route; events/s over convert + load + query.
   The two match sets on those events must be identical; differences are printed.
"""

from __future__ import annotations

import argparse
import os
import resource
import sqlite3
import sys
import tempfile
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from detections import RuleSet, load_rules, rawscan  # noqa: E402
from detections.convert import backend_for  # noqa: E402
from detections.windows import event_key, flatten_record, with_aliases  # noqa: E402

SHARED = REPO.parent / "shared"
CORPUS = [SHARED / "sigma" / d for d in ("rules", "rules-emerging-threats", "rules-threat-hunting")]


def unzip_all(target: Path) -> list[Path]:
    for archive in sorted((SHARED / "datasets/otrf/atomic/windows").rglob("*.zip")):
        with zipfile.ZipFile(archive) as bundle:
            for member in bundle.infolist():
                if member.filename.endswith(".json") and "__MACOSX" not in member.filename:
                    bundle.extract(member, target)
    return sorted(target.rglob("*.json"))


def read_events(files: list[Path]) -> Iterator[dict[str, Any]]:
    for path in files:
        with path.open("rb") as stream:
            for line in stream:
                if line.strip():
                    yield flatten_record(orjson.loads(line))


def read_lines(files: list[Path]) -> Iterator[tuple[bytes, dict[str, Any]]]:
    """(JSON line, flat event) pairs: the engine may screen keywords on the line's bytes."""
    for path in files:
        with path.open("rb") as stream:
            for line in stream:
                if not line.isspace():
                    yield line, flatten_record(orjson.loads(line))


def run_sekimori(rules: RuleSet, files: list[Path], out: Path) -> tuple[int, int, float, float]:
    """(events, matches, wall seconds, CPU seconds of this process)."""
    events = matches = 0
    silent = rules.silent
    cpu = time.process_time()
    started = time.perf_counter()
    with out.open("wb") as sink:
        for line, event in read_lines(files):
            events += 1
            for rule in rules.fired(event, line):
                if rule.rule_id not in silent:
                    matches += 1
                    sink.write(orjson.dumps({"rule_id": rule.rule_id, "event": event}) + b"\n")
    return events, matches, time.perf_counter() - started, time.process_time() - cpu


def _route_sql(rule: Any) -> str:
    parts = []
    for channel, eid in sorted(rule.windows, key=str):
        where = [] if channel == "*" else [f"lower(Channel) = '{channel}'"]
        if eid is not None:
            where.append(f"CAST(EventID AS INTEGER) = {eid}")
        parts.append("(" + (" AND ".join(where) or "1") + ")")
    return " OR ".join(parts)


def run_baseline(
    rules: RuleSet, events: list[dict[str, Any]]
) -> tuple[set[tuple[int, str]], float, int]:
    from sigma.collection import SigmaCollection

    started = time.perf_counter()
    views = [with_aliases(e, k) if (k := event_key(e)) else e for e in events]
    # SQLite column names are case-insensitive: ProcessId and ProcessID share one column.
    by_folded: dict[str, str] = {}
    for view in views:
        for name in view:
            by_folded.setdefault(name.lower(), name)
    columns = sorted(by_folded.values())
    db = sqlite3.connect(":memory:")
    db.create_function(
        "regexp", 2, lambda p, v: v is not None and __import__("re").search(p, str(v)) is not None
    )
    quoted = ", ".join(f'"{c}"' for c in columns)
    db.execute(f"CREATE TABLE logs (row INTEGER, {quoted})")
    marks = ", ".join("?" for _ in range(len(columns) + 1))
    db.executemany(
        f"INSERT INTO logs VALUES ({marks})",  # noqa: S608 - our own column names
        [[i, *(_cell(_get(v, c)) for c in columns)] for i, v in enumerate(views)],
    )
    found: set[tuple[int, str]] = set()
    failed = 0
    backend = backend_for("sqlite", None)
    for rule in rules:
        if not rule.windows:
            continue
        try:
            collection = SigmaCollection.from_yaml(rule.source.read_text(encoding="utf-8"))
            (query,) = [
                q
                for r, q in zip(collection.rules, backend.convert(collection), strict=False)
                if str(r.id) == rule.rule_id
            ] or [None]
            if query is None:
                failed += 1
                continue
            sql = query.replace("SELECT *", "SELECT row", 1)
            sql = sql.replace(" WHERE ", f" WHERE ({_route_sql(rule)}) AND (", 1) + ")"
            for (row,) in db.execute(sql):
                found.add((row, rule.rule_id))
        except Exception:  # noqa: BLE001 - a query the backend cannot express: counted
            failed += 1
    return found, time.perf_counter() - started, failed


def _get(view: dict[str, Any], column: str) -> Any:
    if column in view:
        return view[column]
    folded = column.lower()
    return next((v for k, v in view.items() if k.lower() == folded), None)


def _cell(value: Any) -> Any:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | dict):
        return orjson.dumps(value).decode()
    return value


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--baseline-events", type=int, default=20_000)
    parser.add_argument("--files", type=int, default=0, help="only the first N dataset files")
    parser.add_argument("--cpu", type=int, default=0, help="the one CPU to run on (-1: any)")
    args = parser.parse_args()
    if args.cpu >= 0:
        os.sched_setaffinity(0, {args.cpu})
    with tempfile.TemporaryDirectory() as tmp:
        files = unzip_all(Path(tmp) / "otrf")
        if args.files:
            files = files[: args.files]
        cache = Path(tmp) / "cache"
        started = time.perf_counter()
        load_rules(CORPUS, cache_dir=cache)
        cold = time.perf_counter() - started
        started = time.perf_counter()
        rules = load_rules(CORPUS, cache_dir=cache)
        warm = time.perf_counter() - started
        windows = sum(1 for r in rules if r.windows)
        events, matches, elapsed, cpu = run_sekimori(rules, files, Path(tmp) / "matches.jsonl")
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"rules: {len(rules)} compiled ({windows} Windows)")
        print(f"rule load: {cold:.1f}s from YAML, {warm:.2f}s from the compiled-ruleset cache")
        scan = "hyperscan over raw lines" if rawscan.available() else "pure Python (no hyperscan)"
        print(f"prefilter: {scan}")
        print(f"sekimori: {events} events, {matches} matches, {elapsed:.1f}s, "
              f"{events / elapsed:,.0f} events/s, peak RSS {rss:,.0f} MB")  # fmt: skip
        # On a shared machine the wall clock includes time other processes held the core.
        print(f"sekimori CPU time: {cpu:.1f}s, {events / cpu:,.0f} events per CPU-second")
        pairs = [p for _, p in zip(range(args.baseline_events), read_lines(files), strict=False)]
        sample = [event for _, event in pairs]
        # the path that was timed: each event with its JSON line
        ours = {(i, r.rule_id) for i, (line, e) in enumerate(pairs) for r in rules.fired(e, line)}
        theirs, base_elapsed, failed = run_baseline(rules, sample)
        print(f"baseline (pySigma sqlite): {len(sample)} events, {len(theirs)} matches, "
              f"{base_elapsed:.1f}s, {len(sample) / base_elapsed:,.0f} events/s, "
              f"{failed} rules not convertible")  # fmt: skip
        print(f"speed-up: {(events / elapsed) / (len(sample) / base_elapsed):.1f}x")
        diff = ours ^ theirs
        verdict = "identical" if not diff else f"{len(diff)} differ"
        print(f"match sets on the baseline sample: {verdict}")
        for row, rule_id in sorted(diff)[:20]:
            side = "sekimori only" if (row, rule_id) in ours else "sqlite only"
            print(f"  {side}: event {row} rule {rules.get(rule_id).title}")


if __name__ == "__main__":
    main()
