"""DNS-tunnelling scoring over ``dns`` query events, per (source.ip, registered domain).

A tunnel encodes data in the names it asks for, so one domain collects many unique, long,
random-looking subdomains (and often TXT/NULL queries, whose answers carry the most data).
Per source and registered domain, over the queries in the window:

- unique subdomains (the gate: fewer than ``min_unique_subdomains`` are not scored);
- mean Shannon entropy (bits per character) of the subdomain part, dots removed;
- mean and maximum label length of the subdomain part;
- the share of "encoded" subdomains: at least 12 characters, at least 30 % digits (hex and
  similar encodings, whose small alphabet keeps their entropy as low as readable names');
- query volume and the share of TXT/NULL queries;
- score = 0.6 randomness + 0.25 length score + 0.15 TXT/NULL share, where randomness is the
  larger of the entropy score and the encoded share, and the entropy and length scores rise
  linearly from their ``*_low`` to their ``*_high`` threshold.

The registered domain is approximated as the last two labels, or three under the common
second-level public suffixes in ``TWO_LEVEL_SUFFIXES`` (no public-suffix list download).
Queries by the designated resolver are scored like any other source: a tunnel through the
resolver shows up as the resolver forwarding the same names. Reverse lookups (``.arpa``)
are not scored: their "subdomains" are addresses.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

import pandas as pd  # type: ignore[import-untyped]

from agents.schema import get_path
from collector.analytics.config import DnsTunnelThresholds
from collector.analytics.spells import Finding

DNS_TUNNEL_RULE_ID: Final = "sekimori-dns-tunnel"
DNS_TUNNEL_TITLE: Final = "DNS Tunnelling Suspected"
DNS_TUNNEL_TAGS: Final = ("attack.command_and_control", "attack.exfiltration", "attack.t1071.004")
# Second-level public suffixes under which registrations sit one label deeper (Japan's
# attribute domains, LGWAN's lg.jp, and the common UK/AU/others). Not the full PSL.
TWO_LEVEL_SUFFIXES: Final = frozenset(
    {
        "co.jp", "ne.jp", "or.jp", "go.jp", "lg.jp", "ac.jp", "ad.jp", "ed.jp", "gr.jp",
        "co.uk", "org.uk", "ac.uk", "gov.uk", "com.au", "net.au", "org.au", "co.kr",
        "com.cn", "com.tw", "co.nz",
    }
)  # fmt: skip
BULK_TYPES: Final = frozenset({"TXT", "NULL"})


@dataclass(frozen=True, slots=True, kw_only=True)
class DnsTunnelScore:
    src: str
    domain: str
    queries: int
    unique_subdomains: int
    entropy: float  # mean bits per character of the unique subdomains
    mean_label_length: float
    max_label_length: int
    mean_length: float  # mean subdomain length (characters, dots removed)
    bulk_share: float  # TXT/NULL share of the queries
    encoded_share: float  # share of unique subdomains that look hex-like (long, digit-heavy)
    score: float
    first_seen: datetime
    last_seen: datetime
    event_ids: tuple[str, ...]
    src_zone: str | None


def registered_domain(name: str) -> tuple[str, str] | None:
    """(registered domain, subdomain part) of a query name, or None when there is no
    subdomain part to score (the name is the domain itself, a bare label, or ``.arpa``)."""
    labels = [label for label in name.lower().rstrip(".").split(".") if label]
    if len(labels) < 2 or labels[-1] == "arpa":
        return None
    size = 3 if ".".join(labels[-2:]) in TWO_LEVEL_SUFFIXES else 2
    if len(labels) <= size:
        return None
    return ".".join(labels[-size:]), ".".join(labels[:-size])


def shannon_entropy(text: str) -> float:
    """Bits per character of ``text`` (0 for an empty string)."""
    if not text:
        return 0.0
    counts = Counter(text)
    total = len(text)
    return -sum(n / total * math.log2(n / total) for n in counts.values())


def looks_encoded(flat: str) -> bool:
    """A long, digit-heavy subdomain (dots removed): hex, base32 with digits, and the like."""
    return len(flat) >= 12 and sum(c.isdigit() for c in flat) >= 0.3 * len(flat)


def queries_frame(events: Iterable[Mapping[str, Any]]) -> pd.DataFrame:
    """One row per DNS query event with a scorable name."""
    rows = []
    for event in events:
        if get_path(event, "dns.type") != "query":
            continue
        name, src = get_path(event, "dns.question.name"), get_path(event, "source.ip")
        if not isinstance(name, str) or not isinstance(src, str):
            continue
        split = registered_domain(name)
        if split is None:
            continue
        rows.append(
            (
                str(get_path(event, "event.id")),
                src,
                split[0],
                split[1],
                str(get_path(event, "dns.question.type") or ""),
                get_path(event, "@timestamp"),
                get_path(event, "sekimori.zone.source"),
            )
        )
    frame = pd.DataFrame(
        rows, columns=["event_id", "src", "domain", "sub", "qtype", "ts", "src_zone"]
    )
    if not frame.empty:
        frame["ts"] = pd.to_datetime(frame["ts"], utc=True, format="ISO8601")
        frame = frame.sort_values("ts", kind="stable").reset_index(drop=True)
    return frame


def _ramp(value: float, low: float, high: float) -> float:
    return min(1.0, max(0.0, (value - low) / (high - low)))


def score_domains(frame: pd.DataFrame, t: DnsTunnelThresholds) -> list[DnsTunnelScore]:
    """Score every (source, domain) with enough unique subdomains (highest score first)."""
    if frame.empty:
        return []
    scores: list[DnsTunnelScore] = []
    for (src, domain), group in frame.groupby(["src", "domain"], sort=True):
        unique = group["sub"].unique()
        if len(unique) < t.min_unique_subdomains:
            continue
        flat = [sub.replace(".", "") for sub in unique]
        labels = [len(label) for sub in unique for label in sub.split(".")]
        entropy = sum(shannon_entropy(sub) for sub in flat) / len(flat)
        mean_length = sum(len(sub) for sub in flat) / len(flat)
        bulk = float(group["qtype"].isin(BULK_TYPES).mean())
        encoded = sum(looks_encoded(sub) for sub in flat) / len(flat)
        score = (
            0.6 * max(_ramp(entropy, t.entropy_low, t.entropy_high), encoded)
            + 0.25 * _ramp(mean_length, t.length_low, t.length_high)
            + 0.15 * bulk
        )
        zone = group["src_zone"].iloc[-1]
        scores.append(
            DnsTunnelScore(
                src=str(src),
                domain=str(domain),
                queries=len(group),
                unique_subdomains=len(unique),
                entropy=round(entropy, 3),
                mean_label_length=round(sum(labels) / len(labels), 1),
                max_label_length=max(labels),
                mean_length=round(mean_length, 1),
                bulk_share=round(bulk, 3),
                encoded_share=round(encoded, 3),
                score=round(score, 3),
                first_seen=group["ts"].min().to_pydatetime(),
                last_seen=group["ts"].max().to_pydatetime(),
                event_ids=tuple(group["event_id"].tail(t.max_event_ids)),
                src_zone=zone if isinstance(zone, str) else None,
            )
        )
    return sorted(scores, key=lambda s: (-s.score, s.src, s.domain))


def dns_findings(scores: Iterable[DnsTunnelScore], t: DnsTunnelThresholds) -> list[Finding]:
    return [
        Finding(
            rule_id=DNS_TUNNEL_RULE_ID,
            title=DNS_TUNNEL_TITLE,
            level="high",
            tags=DNS_TUNNEL_TAGS,
            host=s.src,
            zone=s.src_zone,
            entity=f"{s.src}->{s.domain}",
            count=s.queries,
            first_seen=s.first_seen,
            last_seen=s.last_seen,
            event_ids=s.event_ids,
            description=(
                f"{s.src} asked {s.queries} queries for {s.unique_subdomains} unique"
                f" subdomains of {s.domain}: entropy {s.entropy:.2f} bits/char, mean"
                f" subdomain length {s.mean_length:.0f} (longest label {s.max_label_length}),"
                f" encoded-looking {s.encoded_share:.0%}, TXT/NULL share {s.bulk_share:.0%};"
                f" tunnel score {s.score:.2f}: find the"
                " process on the source host that resolves these names"
            ),
        )
        for s in scores
        if s.score >= t.score
    ]
