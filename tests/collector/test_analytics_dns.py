"""DNS-tunnelling scoring over dns query events built in the sensor schema."""

from __future__ import annotations

import random
import string
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from agents.errors import ConfigError
from agents.schema import to_iso
from collector.analytics.config import DnsTunnelThresholds
from collector.analytics.dnstunnel import (
    DNS_TUNNEL_RULE_ID,
    dns_findings,
    queries_frame,
    registered_domain,
    score_domains,
    shannon_entropy,
)
from tests.conftest import build_event

T0 = datetime(2026, 11, 26, 6, 0, tzinfo=UTC)
SENSOR = "5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e"
PC1, RESOLVER = "10.10.0.5", "10.99.0.53"
BASE32 = string.ascii_lowercase + "234567"


def dns_event(
    at: datetime,
    name: str,
    *,
    src: str = PC1,
    dst: str = RESOLVER,
    qtype: str = "A",
    kind: str = "query",
    dns_id: int = 4242,
) -> dict[str, Any]:
    """A sealed dns event exactly as the sensor emits it (before zone enrichment)."""
    answer: dict[str, Any] = {}
    if kind == "answer":
        answer = {"dns__response_code": "NXDOMAIN"}
        src, dst = dst, src
    return build_event(
        "dns",
        agent_id=SENSOR,
        host="router",
        host_ip="10.99.0.1",
        timestamp=to_iso(at),
        event__action=f"dns_{kind}",
        event__category=["network"],
        event__type=["protocol"],
        event__dataset="sekimori.dns",
        network__protocol="dns",
        network__transport="udp",
        source__ip=src,
        source__port=53000 if kind == "query" else 53,
        destination__ip=dst,
        destination__port=53 if kind == "query" else 53000,
        dns__type=kind,
        dns__id=dns_id,
        dns__question__name=name,
        dns__question__type=qtype,
        sekimori__sensor__interface="veth-rt0",
        **answer,
    )


def tunnel(
    domain: str, *, count: int, length: int = 24, qtype: str = "A", every: float = 1.0,
    src: str = PC1, seed: int = 5, start: datetime = T0,
) -> list[dict[str, Any]]:  # fmt: skip
    """``count`` queries for random base32 labels under ``domain`` (iodine/dnscat-like)."""
    rng = random.Random(seed)
    return [
        dns_event(
            start + timedelta(seconds=i * every),
            "".join(rng.choice(BASE32) for _ in range(length)) + "." + domain,
            src=src,
            qtype=qtype,
            dns_id=i,
        )
        for i in range(count)
    ]


NORMAL = [
    "www.example.co.jp", "mail.example.co.jp", "www.city.example.lg.jp", "www.google.com",
    "fonts.googleapis.com", "www.soumu.go.jp", "api.github.com", "update.example.com",
    "ntp.nict.jp", "www.e-gov.go.jp", "static.example.com", "cdn.example.com",
]  # fmt: skip


def normal_lookups(count: int, src: str = PC1) -> list[dict[str, Any]]:
    return [
        dns_event(T0 + timedelta(seconds=i), NORMAL[i % len(NORMAL)], src=src, dns_id=i)
        for i in range(count)
    ]


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("a.b.example.com", ("example.com", "a.b")),
        ("WWW.Example.COM.", ("example.com", "www")),
        ("x1.city.example.lg.jp", ("example.lg.jp", "x1.city")),
        ("data.shop.co.jp", ("shop.co.jp", "data")),
        ("news.bbc.co.uk", ("bbc.co.uk", "news")),
        ("example.com", None),
        ("shop.co.jp", None),
        ("localhost", None),
        ("4.3.2.1.in-addr.arpa", None),
    ],
)
def test_registered_domain(name: str, expected: tuple[str, str] | None) -> None:
    assert registered_domain(name) == expected


def test_shannon_entropy() -> None:
    assert shannon_entropy("") == 0.0
    assert shannon_entropy("aaaa") == 0.0
    assert shannon_entropy("abcd") == 2.0
    assert shannon_entropy("abcdefgh" * 3) == 3.0


def test_a_tunnel_through_the_resolver_is_found() -> None:
    t = DnsTunnelThresholds(min_unique_subdomains=30)
    events = tunnel("t.example.net", count=40) + normal_lookups(40)
    events += [dns_event(T0, "x.t.example.net", kind="answer")]  # answers are not counted
    scores = score_domains(queries_frame(events), t)
    (top,) = scores  # only example.net has 30+ unique subdomains
    assert (top.src, top.domain) == (PC1, "example.net")
    assert (top.queries, top.unique_subdomains) == (40, 40)
    assert top.entropy > 3.8 and top.mean_length == 25.0  # 24 + "t", dots removed
    assert top.max_label_length == 24 and top.bulk_share == 0.0
    (finding,) = dns_findings(scores, t)
    assert finding.rule_id == DNS_TUNNEL_RULE_ID
    assert finding.entity == f"{PC1}->example.net" and finding.host == PC1
    assert len(finding.event_ids) == 40
    assert "40 unique subdomains of example.net" in finding.description


def test_txt_tunnels_with_short_hex_labels_are_found() -> None:
    t = DnsTunnelThresholds(min_unique_subdomains=30)
    rng = random.Random(9)
    events = [
        dns_event(T0 + timedelta(seconds=i), f"{rng.getrandbits(64):016x}.c2.example.org",
                  qtype="TXT", dns_id=i)
        for i in range(35)
    ]  # fmt: skip
    (score,) = score_domains(queries_frame(events), t)
    assert score.bulk_share == 1.0 and score.score >= t.score
    assert len(dns_findings([score], t)) == 1


def test_the_resolver_forwarding_a_tunnel_is_scored_as_its_own_source() -> None:
    t = DnsTunnelThresholds(min_unique_subdomains=30)
    events = tunnel("exfil.example.net", count=30, src=RESOLVER)
    (finding,) = dns_findings(score_domains(queries_frame(events), t), t)
    assert finding.entity == f"{RESOLVER}->example.net"


def test_normal_lookups_do_not_alert() -> None:
    t = DnsTunnelThresholds(min_unique_subdomains=30)
    events = normal_lookups(600) + normal_lookups(300, src="10.10.0.6")
    assert score_domains(queries_frame(events), t) == []


def test_many_wordlike_subdomains_score_below_the_threshold() -> None:
    """A site with 60 readable host names (a municipality's many service hosts)."""
    t = DnsTunnelThresholds(min_unique_subdomains=30)
    words = ["www", "mail", "portal", "kosodate", "bousai", "kankou", "gikai", "toshokan",
             "hoken", "zeimu", "shisetsu", "kyouiku"]  # fmt: skip
    names = [f"{a}-{b}.city.example.lg.jp" for a in words[:6] for b in words[6:]]
    names += [f"{w}{i}.city.example.lg.jp" for w in words for i in range(2)]
    events = [dns_event(T0 + timedelta(seconds=i), n, dns_id=i) for i, n in enumerate(names)]
    (score,) = score_domains(queries_frame(events), t)
    assert score.unique_subdomains == 60
    assert score.score < t.score
    assert dns_findings([score], t) == []


def test_fewer_unique_subdomains_than_the_minimum_are_not_scored() -> None:
    t = DnsTunnelThresholds(min_unique_subdomains=30)
    events = tunnel("t.example.net", count=29)
    assert score_domains(queries_frame(events), t) == []
    assert score_domains(queries_frame(events), DnsTunnelThresholds()) == []  # default 100


@pytest.mark.parametrize(
    "bad",
    [{"min_unique_subdomains": 0}, {"entropy_low": 4.0}, {"length_high": 5.0}, {"score": 2.0}],
)
def test_bad_thresholds_are_refused(bad: dict[str, Any]) -> None:
    with pytest.raises(ConfigError):
        DnsTunnelThresholds(**bad)
