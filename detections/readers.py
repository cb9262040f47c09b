"""Read events from log files for offline scanning: EVTX, JSON and JSON lines, gzip and zip.

Accepted inputs (by content, and by suffix where content cannot tell):

- ``*.evtx`` — Windows event logs, parsed by the ``evtx`` package (Rust) and flattened to
  Sysmon/Security field names (:func:`detections.windows.flatten_record`);
- JSON: one object, an array of objects, concatenated objects (pretty-printed or not), or
  JSON lines (one object per line) — ``evtx_dump`` output, OTRF/NXLog exports, our own events;
- ``*.gz`` (one compressed file) and ``*.zip`` (every member, recursively by suffix).

Every event comes out as a dict; a file that cannot be parsed raises :class:`InputError` with
the file, and the position where known, so a scan reports it rather than skipping it.
"""

from __future__ import annotations

import gzip
import io
import json
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any, Final

import orjson

from agents.errors import InputError
from detections.windows import flatten_record

EVTX_MAGIC: Final = b"ElfFile\x00"
_REMEDY: Final = "pass EVTX, JSON, JSON lines, or a .gz/.zip of them"


Event = dict[str, Any]
Item = tuple[Event, bytes | None]  # an event and, for JSON lines, the line it was parsed from


def iter_events(path: Path) -> Iterator[Event]:
    """Every event in one input file (flattened when it is a Windows event)."""
    for event, _ in iter_events_raw(path):
        yield event


def iter_events_raw(path: Path) -> Iterator[Item]:
    """Like :func:`iter_events`, with each event's JSON line when the input is JSON lines
    (the event is then ``flatten_record(orjson.loads(line))``, which lets
    :meth:`detections.RuleSet.fired` prefilter on the raw bytes); None for other inputs."""
    name = path.name.lower()
    if name.endswith(".zip"):
        with zipfile.ZipFile(path) as archive:
            for member in archive.infolist():
                if member.is_dir():
                    continue
                with archive.open(member) as stream:
                    yield from _from_stream(stream, f"{path}!{member.filename}")
        return
    if name.endswith(".gz"):
        with gzip.open(path, "rb") as stream:
            yield from _from_stream(stream, str(path))  # type: ignore[arg-type]
        return
    with path.open("rb") as stream:
        yield from _from_stream(stream, str(path))


def _from_stream(stream: IO[bytes], label: str) -> Iterator[Item]:
    head = stream.read(8)
    if head == EVTX_MAGIC:
        data = head + stream.read()
        yield from _evtx(io.BytesIO(data), label)
        return
    if head[:2] == b"PK":  # a zip inside a zip or a .gz
        with zipfile.ZipFile(io.BytesIO(head + stream.read())) as archive:
            for member in archive.infolist():
                if not member.is_dir():
                    with archive.open(member) as inner:
                        yield from _from_stream(inner, f"{label}!{member.filename}")
        return
    yield from _json(head, stream, label)


def _evtx(source: Any, label: str) -> Iterator[Item]:
    import evtx  # the Rust parser: imported only when an EVTX file is scanned

    try:
        parser = evtx.PyEvtxParser(source)
        for record in parser.records_json():
            if record is not None:
                yield flatten_record(orjson.loads(record["data"])), None
    except (OSError, RuntimeError, orjson.JSONDecodeError) as exc:
        raise InputError(f"unreadable EVTX: {exc}", source=label, remedy=_REMEDY) from exc


def _json(head: bytes, stream: IO[bytes], label: str) -> Iterator[Item]:
    first = head.lstrip()
    while not first:
        more = stream.read(4096)
        if not more:
            return  # empty file: no events
        first = more.lstrip()
        head += more
    if first[:1] == b"[":
        yield from _objects(_load(head + stream.read(), label), label)
        return
    lines = _lines(head, stream)
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            value = orjson.loads(line)
        except orjson.JSONDecodeError:
            # Not JSON lines: concatenated (possibly pretty-printed) objects from here on.
            rest = line + b"".join(lines)
            yield from _concatenated(rest, label, number)
            return
        if isinstance(value, dict):
            yield flatten_record(value), line
        else:
            yield from _objects(value, label)


def _lines(head: bytes, stream: IO[bytes]) -> Iterator[bytes]:
    buffer = head + stream.readline()
    if buffer:
        yield buffer
    yield from stream


def _load(data: bytes, label: str) -> Any:
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise InputError(f"invalid JSON: {exc}", source=label, remedy=_REMEDY) from exc


def _concatenated(data: bytes, label: str, first_line: int) -> Iterator[Item]:
    text = data.decode("utf-8", errors="replace")
    decoder = json.JSONDecoder()
    position = 0
    while True:
        while position < len(text) and text[position] in " \t\r\n":
            position += 1
        if position >= len(text):
            return
        try:
            value, position = decoder.raw_decode(text, position)
        except json.JSONDecodeError as exc:
            line = first_line + text.count("\n", 0, exc.pos)
            raise InputError(
                f"invalid JSON: {exc.msg}", source=label, line=line, remedy=_REMEDY
            ) from exc
        yield from _objects(value, label)


def _objects(value: Any, label: str) -> Iterator[Item]:
    if isinstance(value, dict):
        yield flatten_record(value), None
    elif isinstance(value, list):
        for item in value:
            yield from _objects(item, label)
    else:
        raise InputError(
            f"expected JSON objects, found {type(value).__name__}", source=label, remedy=_REMEDY
        )
