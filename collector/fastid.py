"""The event-id check without ``json.dumps``: orjson where it is byte-equal, stdlib otherwise.

``agents.schema.compute_event_id`` hashes ``canonical_json`` (``json.dumps`` with sorted keys,
no spaces, UTF-8 kept) of the *identity view*: the dotted-path -> leaf mapping of the event
without ``event.id`` and the collector-set fields. The collector re-hashes every event to
check the id, and ``json.dumps`` in pure Python is the slow half of that.

``canonical_bytes`` produces the same bytes with ``orjson.dumps(OPT_SORT_KEYS)`` when equality
is guaranteed, and falls back to ``agents.schema.canonical_json`` otherwise:

- only ``str`` keys and leaves that are exactly ``str``, ``int`` (within ±2**53-1, so never
  a bool or a subclass), ``bool``, ``None`` or a ``list`` of those are taken (no floats: the
  two libraries print some floats differently);
- the orjson output must be pure ASCII. For ASCII text both escape exactly the same
  characters the same way (``"``, ``\\``, and U+0000..U+001F with the same short forms and
  lowercase ``\\u00xx``): ``tests/collector/test_ingest_fastid.py`` checks every ASCII
  character and hypothesis checks hostile strings. Non-ASCII text (which is equal too, by the
  same tests) still takes the stdlib path: the guarantee is kept narrow on purpose;
- keys sort the same: both order by code point, and UTF-8 byte order is code point order.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any, Final

import orjson

from agents.schema import canonical_json

_MAX_INT: Final = 2**53 - 1
_SORTED: Final = orjson.OPT_SORT_KEYS


def _plain(value: Any) -> bool:
    kind = type(value)
    if kind is str or kind is bool or value is None:
        return True
    if kind is int:
        return bool(-_MAX_INT <= value <= _MAX_INT)
    if kind is list:
        return all(type(item) is str for item in value)
    return False


def canonical_bytes(view: Mapping[str, Any]) -> bytes:
    """``canonical_json(view).encode()`` for a flat mapping (dotted path -> leaf)."""
    if type(view) is dict and all(type(k) is str and _plain(v) for k, v in view.items()):
        try:
            fast = orjson.dumps(view, option=_SORTED)
        except orjson.JSONEncodeError:  # a lone surrogate: let the stdlib path raise
            fast = b"\x80"
        if fast.isascii():
            return fast
    return canonical_json(view).encode("utf-8")


def id_of_view(view: Mapping[str, Any]) -> str:
    """``agents.schema.compute_event_id`` for an identity view already flattened."""
    return hashlib.sha256(canonical_bytes(view)).hexdigest()[:32]


def id_of_checked_view(view: dict[str, Any]) -> str:
    """Like ``id_of_view`` for a view whose leaves the caller has type-checked already
    (``str``, in-range ``int``, ``bool``, ``list`` of ``str``): skips the leaf re-check."""
    try:
        fast = orjson.dumps(view, option=_SORTED)
    except orjson.JSONEncodeError:
        fast = b"\x80"
    if not fast.isascii():
        fast = canonical_json(view).encode("utf-8")
    return hashlib.sha256(fast).hexdigest()[:32]
