"""The whole lab, as CI runs it: ``sekimori lab test --json`` as a subprocess.

Builds the β′ lab (namespaces, collector, services, enrolled agents, the router's sensor), runs
the benign baseline and every scenario, and removes the lab. Every scenario must be detected,
the baseline must raise nothing, and no lab namespace may remain. Needs root and iproute2;
without them it fails loudly (never skips).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from collector.lab.netns import lab_namespaces, topology_namespaces
from collector.lab.scenarios import SCENARIOS
from collector.lab.topology import default_topology

SEKIMORI = str(Path(sys.executable).parent / "sekimori")


def test_lab_test_detects_every_scenario_and_nothing_in_the_baseline(tmp_path: Path) -> None:
    assert os.geteuid() == 0, "the lab needs root (ip netns, the process connector)"
    for tool in ("ip", "curl", "bash"):
        assert shutil.which(tool), f"the lab needs {tool}"
    data_dir = tmp_path / "lab"
    done = subprocess.run(
        [SEKIMORI, "lab", "test", "--json", "--data-dir", str(data_dir)],
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )
    logs = data_dir / "logs"
    detail = done.stderr[-3000:]
    if logs.exists():
        for log in sorted(logs.iterdir()):
            detail += f"\n--- {log.name}\n{log.read_text(errors='replace')[-800:]}"
    assert done.stdout, detail
    report = json.loads(done.stdout)
    names = [s["name"] for s in report["scenarios"]]
    assert names == [s.name for s in SCENARIOS]
    missed = {s["name"]: s["missed"] for s in report["scenarios"] if s["missed"]}
    assert missed == {}, detail
    assert report["baseline"]["unexpected"] == [], "the benign baseline raised alerts"
    assert report["false_positives"] == 0, json.dumps(report, indent=1)
    assert report["scenarios_detected"] == report["scenarios_total"] == len(SCENARIOS)
    assert done.returncode == 0, detail
    for scenario in report["scenarios"]:
        for seen in scenario["fired"].values():
            assert 0 <= seen["seconds"] <= 60
    assert lab_namespaces(topology_namespaces(default_topology())) == [], "lab left behind"
    assert not (data_dir / "lab-state.json").exists()
