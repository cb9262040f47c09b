"""The fast path (prefilter + generated code + hyperscan over raw lines) answers exactly what
the reference path answers: every routed rule's closure predicate, no prefilter.

``RuleSet.fired(event, line)`` (hyperscan over the JSON line), ``RuleSet.fired(event)`` (pure
Python prefilter) and ``RuleSet.fired_reference(event)`` must agree on real OTRF events with the
whole SigmaHQ corpus, on re-encoded variants of them (``\\u``/``\\/`` escapes, Kelvin sign) that
force the fallbacks, and on the regression samples; value-level edge cases are checked one IR
condition at a time.
"""

from __future__ import annotations

import json
import re
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from detections import RuleSet
from detections import rawscan as rawscan_module
from detections.codegen import generate
from detections.compiler import compile_node
from detections.conformance import regression_cases
from detections.prefilter import screen_grams
from detections.rawscan import RawScanner, json_form, verbatim
from detections.readers import iter_events
from detections.regex_literals import required_symbols
from detections.windows import flatten_record
from tests.detections.conftest import SHARED, SIGMA_ROOT, require_shared

OTRF = SHARED / "datasets" / "otrf" / "atomic" / "windows"
LINES_PER_FILE = 45


@pytest.fixture(scope="module")
def otrf_lines(tmp_path_factory: pytest.TempPathFactory) -> list[bytes]:
    """The first lines of every OTRF Windows dataset (a few thousand real events)."""
    target = tmp_path_factory.mktemp("otrf")
    lines: list[bytes] = []
    for archive in sorted(require_shared(OTRF).rglob("*.zip")):
        with zipfile.ZipFile(archive) as bundle:
            for member in bundle.infolist():
                if member.filename.endswith(".json") and "__MACOSX" not in member.filename:
                    path = Path(bundle.extract(member, target))
                    with path.open("rb") as stream:
                        for _, line in zip(range(LINES_PER_FILE), stream, strict=False):
                            if not line.isspace():
                                lines.append(line)
    assert len(lines) > 4_000, "the OTRF datasets look truncated"
    return lines


def ids(rules: list[Any]) -> list[str]:
    return [rule.rule_id for rule in rules]


def agree(ruleset: RuleSet, lines: list[bytes]) -> int:
    """Assert the three paths agree on every line; the number of matches."""
    matches = 0
    for line in lines:
        event = flatten_record(orjson.loads(line))
        reference = ids(ruleset.fired_reference(event))
        assert ids(ruleset.fired(event, line)) == reference, line[:300]
        assert ids(ruleset.fired(event)) == reference, line[:300]
        matches += len(reference)
    return matches


def test_fast_path_agrees_with_reference_on_otrf(
    sigma_corpus: RuleSet, otrf_lines: list[bytes]
) -> None:
    assert rawscan_module.available(), "hyperscan is not installed (pip install hyperscan)"
    matches = agree(sigma_corpus, otrf_lines)
    assert matches > 100, "too few matches: the comparison would be vacuous"
    assert sum(1 for line in otrf_lines if verbatim(line)) > len(otrf_lines) // 2


def _variants(lines: list[bytes]) -> Iterator[bytes]:
    for line in lines:
        yield line.replace(b"/", b"\\/")  # only inside strings in JSON: same event
        yield line.replace(b"x", b"\\u0078")  # "x" is in no JSON keyword: same event
        yield json.dumps(orjson.loads(line), ensure_ascii=False).replace("k", "\u212a").encode()
        yield json.dumps(orjson.loads(line), ensure_ascii=False).replace("i", "\u0130").encode()


def test_fallbacks_agree_on_escaped_and_unicode_lines(
    sigma_corpus: RuleSet, otrf_lines: list[bytes]
) -> None:
    sample = otrf_lines[::7]
    variants = list(_variants(sample))
    assert sum(1 for line in variants if not verbatim(line)) > len(sample)
    agree(sigma_corpus, variants)
    scanner = RawScanner({"kerberos": {0}})  # its escape check is the reference's verdict
    for line in [*sample, *variants]:
        assert scanner.scan(line, set()) == verbatim(line), line[:300]


def test_pure_python_prefilter_without_hyperscan(
    sigma_corpus: RuleSet, otrf_lines: list[bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(rawscan_module, "hyperscan", None)
    assert not rawscan_module.available()
    fresh = RuleSet(sigma_corpus.rules, correlations=sigma_corpus.correlations)
    assert agree(fresh, otrf_lines[::3]) > 10


def test_fast_path_agrees_on_regression_samples(sigma_corpus: RuleSet) -> None:
    events = 0
    for info in regression_cases(require_shared(SIGMA_ROOT)):
        for sample in sorted(info.parent.glob("*.evtx")):
            for event in iter_events(sample):
                events += 1
                assert ids(sigma_corpus.fired(event)) == ids(sigma_corpus.fired_reference(event))
    assert events > 128


# -- generated code, value by value --------------------------------------------------------

EDGE_VALUES: list[Any] = [
    None, "", "C:\\Windows\\System32\\CMD.EXE", "cmd.exe", "x\\cmd.exe", "Powershell -enc AAA",
    "\u212aerberos::golden", "\u0130stanbul", "ΑΣ", 4688, 0, 1.5, True, False,
    ["a", "CMD.EXE", 7], [["nested"]], {"k": "v"}, "${env:path}", "ab`cd`e",
]  # fmt: skip

EDGE_TESTS: list[tuple[Any, ...]] = [
    ("eq", "cmd.exe", False), ("eq", "CMD.EXE", True), ("eq", "", False),
    ("sw", "powershell", False), ("sw", "C:", True), ("ew", "\\cmd.exe", False),
    ("ew", ".EXE", True), ("ct", "system32", False), ("ct", "Windows", True),
    ("ct", "", False), ("set", ("cmd.exe", "4688", "true", "")),
    ("re", r"\w+`(?:\w+|-|.)`", 0), ("re", r"(?i)\$\{env", 0), ("re", "CMD", re.IGNORECASE),
    ("glob", r"c:\\.*\\cmd\.exe", False, ("c:\\", "\\cmd.exe")), ("glob", r"C.D", True, ()),
    ("num", 4688), ("cmp", "gte", 1), ("bool", True), ("cidr", "10.0.0.0/8"),
    ("any", (("sw", "c:", False), ("ew", ".exe", False), ("ct", "kerberos", False),
             ("re", "^x", 0), ("num", 0), ("set", ("a", "b")))),
    ("any", (*(("ct", f"needle{i}", False) for i in range(20)), ("ct", "cmd", False))),
]  # fmt: skip


@pytest.mark.parametrize("test", EDGE_TESTS, ids=lambda t: str(t[:2])[:40])
def test_generated_code_matches_closures_on_edge_values(test: tuple[Any, ...]) -> None:
    conditions = [
        ("field", "F", test),
        ("not", ("field", "F", test)),
        ("and", (("field", "F", test), ("not", ("field", "G", ("eq", "x", False))))),
        ("or", (("field", "missing", test), ("field", "a.b", test), ("kw", ("ct", "cmd", False)))),
    ]
    for condition in conditions:
        fast, reference = generate(condition), compile_node(condition)
        for value in EDGE_VALUES:
            for event in ({"F": value, "G": "x"}, {"a": {"b": value}}, {"F": value}):
                assert fast(event) == reference(event), (condition, event)


def test_every_sigmahq_condition_generates(sigma_corpus: RuleSet) -> None:
    probe = {"CommandLine": "cmd.exe /c whoami", "Image": "C:\\Windows\\cmd.exe", "EventID": 1}
    for rule in sigma_corpus:
        assert generate(rule.condition)(probe) == rule.predicate(probe), rule.title


# -- raw lines, grams, regex symbols --------------------------------------------------------


def test_verbatim_tells_real_escapes_from_escaped_backslashes() -> None:
    assert verbatim(b'{"a": "C:\\\\Users\\\\x"}')
    assert verbatim(b'{"a": "C:\\\\users"}')  # escaped backslash, then "u"
    assert not verbatim(b'{"a": "\\u0041"}')
    assert not verbatim(b'{"a": "\\\\\\u0041"}')  # escaped backslash, then an escape
    assert not verbatim(b'{"a": "http:\\/\\/x"}')
    assert verbatim('{"a": "日本"}'.encode())
    assert not verbatim('{"a": "\u212a"}'.encode())


def test_json_form_and_raw_scanner() -> None:
    assert json_form('\\cmd.exe"') == b'\\\\cmd.exe\\"'
    assert json_form("a\x01") is None
    scanner = RawScanner({"\\lsass.exe": {0}, "::": {1}, "1234": {2}, "日本": {3}})
    found: set[int] = set()
    assert scanner.scan(b'{"TargetImage": "C:\\\\Windows\\\\LSASS.EXE"}', found)
    assert found == {0, 2, 3}  # numeric and non-ASCII needles: always candidates
    found = set()
    assert not scanner.scan(b'{"a": "\\u003a:"}', found)  # an escape: caller falls back


def test_screen_grams_cover_every_needle() -> None:
    needles = ["sekurlsa::", "kiwi legit printer", "\\mimilib.dll", "abc", "lsadump::"]
    grams = screen_grams(needles)
    assert all(any(gram in needle for gram in grams) for needle in needles)
    assert len(grams) < len(needles)


@pytest.mark.parametrize(
    ("pattern", "symbols"),
    [(r"\w+`(?:\w+|-|.)`", "`"), (r"(?i)\$\{`?e", "${"), ("a|b", ""), (r"(?i)x.y", "")],
)
def test_required_symbols(pattern: str, symbols: str) -> None:
    assert required_symbols(pattern) == symbols
    for text in ("ab`c`d", "${e", "x-y", "", "a"):
        if re.search(pattern, text):
            assert symbols in text


def test_scanning_json_lines_uses_the_raw_lines_and_agrees_with_reference(
    sigma_corpus: RuleSet, otrf_lines: list[bytes], tmp_path: Path
) -> None:
    """`sekimori rules scan` hands each JSON line to the prefilter (the bench's path): its
    matches over a JSONL file (plain and gzipped, with escaped variants mixed in) are the
    reference matches, event by event."""
    import gzip

    from detections.readers import iter_events_raw
    from detections.scan import scan_files

    lines = [*otrf_lines[::2], *_variants(otrf_lines[::11])]
    body = b"".join(line if line.endswith(b"\n") else line + b"\n" for line in lines)
    plain = tmp_path / "events.jsonl"
    plain.write_bytes(body)
    packed = tmp_path / "events.jsonl.gz"
    packed.write_bytes(gzip.compress(body))
    for path in (plain, packed):
        raws = [raw for _, raw in iter_events_raw(path)]
        assert len(raws) == len(lines) and all(raw is not None for raw in raws)
        expected = sorted(
            (index, rule.rule_id)
            for index, event in enumerate(iter_events(path))
            for rule in sigma_corpus.fired_reference(event)
            if rule.rule_id not in sigma_corpus.silent
        )
        found = sorted(
            (m.index, m.rule_id)
            for m in scan_files([], [path], ruleset=sigma_corpus)
            if not m.correlation
        )
        assert found == expected
        assert len(expected) > 20
