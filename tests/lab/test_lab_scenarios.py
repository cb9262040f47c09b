"""Scenario declarations, the mass-rename correlation, the lab services, state and the report.

Unit level: no namespaces. The services are exercised for real over loopback sockets.
"""

from __future__ import annotations

import copy
import http.client
import json
import socket
import struct
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from agents.errors import ConfigError
from cli import cli
from collector.lab import session
from collector.lab.baseline import baseline_steps
from collector.lab.dns_service import answer, build_query, ntp_reply
from collector.lab.http_services import PACKAGE, SCRIPT, serve_proxy, serve_web
from collector.lab.labtest import LabReport
from collector.lab.report import phase_table, summary
from collector.lab.runner import PhaseResult, Seen
from collector.lab.scenarios import MASS_RENAME, SCENARIOS, Parts, get_scenario
from collector.lab.state import LabProcess, LabState, load_state
from collector.lab.topology import default_topology
from detections import CorrelationEngine, default_rules_dir, load_rules
from tests.support import free_port

ANALYTICS_IDS = {"sekimori-beacon", "sekimori-dns-tunnel"}
SHELLS = {"sh", "bash"}


def known_rule_ids() -> set[str]:
    ruleset = load_rules([default_rules_dir()])
    return {r.rule_id for r in ruleset} | {c.corr_id for c in ruleset.correlations}


def test_scenarios_are_declared_completely() -> None:
    names = [s.name for s in SCENARIOS]
    assert len(names) == len(set(names)) == 9
    parts = Parts.of(default_topology())
    known = known_rule_ids() | ANALYTICS_IDS
    for scenario in SCENARIOS:
        assert scenario.description and scenario.expects, scenario.name
        assert set(scenario.expects) <= known, f"{scenario.name}: unknown rule ids"
        assert set(scenario.tolerates) <= known
        assert not set(scenario.expects) & set(scenario.tolerates)
        assert scenario.hosts(parts)  # every part names a host of the default topology
        for step in scenario.steps(parts):
            assert step.part in scenario.parts, f"{scenario.name}: {step.part} not declared"
            assert all(isinstance(a, str) for a in step.argv)
            if step.argv[0] in SHELLS:  # shell syntax only as constant strings (sh -c "...")
                assert step.argv[1] == "-c" and len(step.argv) == 3


def test_silent_rules_never_appear_as_expectations() -> None:
    silent = load_rules([default_rules_dir()]).silent
    for scenario in SCENARIOS:
        assert not set(scenario.expects) & silent, scenario.name


def test_unknown_scenario_names_the_choices() -> None:
    with pytest.raises(ConfigError) as caught:
        get_scenario("nosuch")
    assert "credential-access" in (caught.value.remedy or "")


def test_baseline_uses_only_the_proxy_and_designated_resolver() -> None:
    parts = Parts.of(default_topology())
    for step in baseline_steps(parts):
        text = " ".join(step.argv)
        if step.argv[0] == "curl":
            assert f"-x http://{parts.proxy.address}:3128" in text
        assert "| sh" not in text


def rename_event(seq: int, name: str = "mv", host: str = "pc1") -> dict[str, Any]:
    path = default_rules_dir() / "linux_impact" / "mass_file_rename.samples.json"
    event: dict[str, Any] = copy.deepcopy(json.loads(path.read_text())["match"][0])
    event["event"]["id"] = f"{seq:032x}"
    event["@timestamp"] = f"2026-11-26T06:10:00.{seq:06d}Z"
    event["host"]["name"] = host
    event["process"]["name"] = name
    event["process"]["executable"] = f"/usr/bin/{name}"
    return event


def test_mass_rename_correlation_fires_on_a_burst_only() -> None:
    ruleset = load_rules([default_rules_dir()])
    burst = CorrelationEngine(ruleset)
    fired = [m for i in range(25) for m in burst.process(rename_event(i))]
    fired += burst.flush()
    assert [m.corr_id for m in fired] == [MASS_RENAME]
    few = CorrelationEngine(ruleset)
    quiet = [m for i in range(10) for m in few.process(rename_event(i))] + few.flush()
    assert quiet == []
    other = CorrelationEngine(ruleset)  # 25 cp processes are not renames
    copies = [m for i in range(25) for m in other.process(rename_event(i, "cp"))]
    assert copies + other.flush() == []


def test_resolver_answers_lab_names_and_nxdomain_otherwise() -> None:
    records = {"www.example.com": "203.0.113.7"}
    reply = answer(build_query("WWW.example.com.", 4242), records)
    assert reply is not None
    query_id, flags, _qd, ancount = struct.unpack("!HHHH", reply[:8])
    assert (query_id, flags & 0xF, ancount) == (4242, 0, 1)
    assert reply.endswith(socket.inet_aton("203.0.113.7"))
    nx = answer(build_query("x1y2.exfil.example.net", 7), records)
    assert nx is not None
    assert struct.unpack("!HH", nx[:4])[1] & 0xF == 3  # NXDOMAIN
    assert answer(b"short", records) is None


def test_ntp_reply_echoes_the_client_timestamp() -> None:
    request = b"\x23" + b"\x00" * 39 + b"ABCDEFGH"
    reply = ntp_reply(request, now=1_700_000_000.5)
    assert len(reply) == 48 and reply[0] & 0x7 == 4  # server mode
    assert reply[24:32] == b"ABCDEFGH"


@pytest.fixture
def web_and_proxy() -> Iterator[tuple[int, int]]:
    stop = threading.Event()
    web, proxy = free_port(), free_port()
    threads = [
        threading.Thread(target=serve_web, args=("127.0.0.1", web, stop), daemon=True),
        threading.Thread(target=serve_proxy, args=("127.0.0.1", proxy, stop), daemon=True),
    ]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 10
    for port in (web, proxy):
        while socket.socket().connect_ex(("127.0.0.1", port)) != 0:
            assert time.monotonic() < deadline, "lab web/proxy did not start"
            time.sleep(0.05)
    yield web, proxy
    stop.set()
    for thread in threads:
        thread.join(5)


def test_proxy_forwards_get_and_connect_to_the_web_server(
    web_and_proxy: tuple[int, int],
) -> None:
    web, proxy = web_and_proxy
    conn = http.client.HTTPConnection("127.0.0.1", proxy, timeout=10)
    conn.request("GET", f"http://127.0.0.1:{web}/install.sh")
    response = conn.getresponse()
    assert (response.status, response.read()) == (200, SCRIPT)
    conn.close()
    tunnel = http.client.HTTPConnection("127.0.0.1", proxy, timeout=10)
    tunnel.set_tunnel("127.0.0.1", web)  # CONNECT, then the request inside the tunnel
    tunnel.request("GET", "/pool/main/libfoo_1.0_amd64.deb")
    response = tunnel.getresponse()
    assert (response.status, len(response.read())) == (200, len(PACKAGE))
    tunnel.close()


def test_state_round_trips_and_a_foreign_data_dir_is_refused(tmp_path: Path) -> None:
    state = LabState(data_dir=tmp_path / "lab", collector_url="https://10.99.0.10:8443")
    state.processes.append(
        LabProcess(name="collector", namespace="skm-coll", pid=1, argv=("x",), log="l")
    )
    state.save()
    loaded = load_state(tmp_path / "lab")
    assert loaded is not None and loaded.to_json() == state.to_json()
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "precious.txt").write_text("keep me")
    with pytest.raises(ConfigError, match="not made by the lab"):
        session._fresh_data_dir(foreign)
    assert (foreign / "precious.txt").exists()


def report(missed: bool) -> LabReport:
    seen = Seen(rule_id="r1", title="Rule One", host="pc1", seconds=1.25)
    scenario = PhaseResult(name="credential-access", expects=("r1", "r2"))
    scenario.fired["r1"] = seen
    if not missed:
        scenario.fired["r2"] = Seen(rule_id="r2", title="Rule Two", host="pc1", seconds=3.0)
    baseline = PhaseResult(name="baseline")
    return LabReport(baseline=baseline, scenarios=[scenario], seconds=42.0)


def test_report_renders_fired_missed_and_seconds() -> None:
    from rich.console import Console

    console = Console(width=160, record=True)
    bad = report(missed=True)
    console.print(phase_table(bad.scenarios))
    console.print(summary(bad))
    text = console.export_text()
    assert "Rule One" in text and "1.2" in text and "MISSED" in text and "r2" in text
    assert "FAIL: 0/1 scenarios detected" in text
    data = bad.to_json()
    assert data["ok"] is False and data["scenarios"][0]["missed"] == ["r2"]  # type: ignore[index]
    good = report(missed=False)
    assert good.ok and good.to_json()["scenarios_detected"] == 1


def test_baseline_alerts_fail_the_report() -> None:
    good = report(missed=False)
    good.baseline.unexpected.append(Seen(rule_id="x", title="FP", host="pc2", seconds=2.0))
    assert not good.ok and good.to_json()["baseline_alerts"] == 1


def test_cli_attack_on_a_lab_that_is_not_up(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        cli, ["lab", "attack", "credential-access", "--data-dir", str(tmp_path)]
    )
    assert result.exit_code == 7  # NotFoundError: tells the user to run lab up
    status = CliRunner().invoke(cli, ["lab", "status", "--json", "--data-dir", str(tmp_path)])
    assert status.exit_code == 0 and json.loads(status.output)["up"] is False
