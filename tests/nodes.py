"""Real single-node OpenSearch / Elasticsearch clusters for the contract tests and benchmarks.

The distributions come from Maven Central through ``mvn dependency:copy`` (cached in ~/.m2)
and are unpacked once into a cache directory. Each node listens on a free loopback port with
a 512 MiB heap, security off, data in a throw-away directory, and is stopped by its pid.

Nothing here skips: a missing Java, Maven or a node that does not come up raises
``NodeError`` with the command and the tail of the node's log, and the fixture fails the test.

    python -m tests.nodes fetch            # download + unpack both distributions (CI warm-up)
    python -m tests.nodes run opensearch   # start one node and print its URL until Ctrl-C
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from tests.support import free_port

HEAP: Final = "-Xms512m -Xmx512m"
START_TIMEOUT: Final = 180.0
JVM_ROOT: Final = Path("/usr/lib/jvm")


class NodeError(RuntimeError):
    """A node could not be fetched or started (the message says what to fix)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Distribution:
    engine: str  # "opensearch" | "elasticsearch"
    group: str
    version: str
    min_java: int
    max_java: int
    env_prefix: str  # OPENSEARCH / ES: *_JAVA_OPTS, *_PATH_CONF, *_JAVA_HOME, *_TMPDIR
    settings: dict[str, str] = field(default_factory=dict)

    @property
    def coordinates(self) -> str:
        return f"{self.group}:{self.engine}:{self.version}:zip"

    @property
    def m2_zip(self) -> Path:
        base = Path.home() / ".m2" / "repository" / Path(*self.group.split("."))
        return base / self.engine / self.version / f"{self.engine}-{self.version}.zip"


DISTRIBUTIONS: Final[dict[str, Distribution]] = {
    "opensearch": Distribution(
        engine="opensearch",
        group="org.opensearch.distribution.integ-test-zip",
        version=(_os_version := os.environ.get("SEKIMORI_OPENSEARCH_VERSION", "3.6.0")),
        min_java=21 if not _os_version.startswith(("1.", "2.")) else 11,  # 2.x runs on JDK 17
        max_java=25 if not _os_version.startswith(("1.", "2.")) else 21,
        env_prefix="OPENSEARCH",
    ),
    "elasticsearch": Distribution(
        engine="elasticsearch",
        group="org.elasticsearch.distribution.integ-test-zip",
        version=os.environ.get("SEKIMORI_ELASTICSEARCH_VERSION", "8.19.21"),
        min_java=17,
        max_java=21,  # 8.x runs on 17 and 21; JDK 24+ removed the SecurityManager it expects
        env_prefix="ES",
        settings={"xpack.security.enabled": "false", "action.destructive_requires_name": "false"},
    ),
}


def cache_dir() -> Path:
    """Where distributions are unpacked: readable by ``nobody`` (nodes never run as root)."""
    default = (
        Path("/var/cache/sekimori/nodes")
        if os.geteuid() == 0
        else (Path.home() / ".cache" / "sekimori" / "nodes")
    )
    return Path(os.environ.get("SEKIMORI_NODE_CACHE", default))


def _java_major(java_home: Path) -> int | None:
    release = java_home / "release"
    if not release.is_file():
        return None
    for line in release.read_text(encoding="utf-8", errors="replace").splitlines():
        if line.startswith("JAVA_VERSION="):
            version = line.split("=", 1)[1].strip('"')
            head = version.split(".")[0]
            return int(head) if head.isdigit() else None
    return None


def find_java(dist: Distribution) -> Path:
    """A JDK home whose major version the distribution supports (newest that fits)."""
    override = os.environ.get(f"SEKIMORI_{dist.engine.upper()}_JAVA_HOME")
    candidates = [Path(override)] if override else sorted(JVM_ROOT.glob("*"))
    fitting = [
        (major, home)
        for home in candidates
        if (major := _java_major(home)) is not None and dist.min_java <= major <= dist.max_java
    ]
    if not fitting:
        raise NodeError(
            f"{dist.engine} {dist.version} needs a JDK {dist.min_java}..{dist.max_java}; none "
            f"found in {override or JVM_ROOT} (set SEKIMORI_{dist.engine.upper()}_JAVA_HOME)"
        )
    return max(fitting)[1]


def fetch(dist: Distribution) -> Path:
    """Download (via Maven) and unpack a distribution; returns its home directory."""
    home = cache_dir() / f"{dist.engine}-{dist.version}"
    if (home / "bin" / dist.engine).is_file():
        return home
    if not dist.m2_zip.is_file():
        if shutil.which("mvn") is None:
            raise NodeError("Maven (mvn) is not installed: apt-get install -y maven")
        with tempfile.TemporaryDirectory() as out:
            command = [
                "mvn", "-B", "-q", "dependency:copy",
                f"-Dartifact={dist.coordinates}", f"-DoutputDirectory={out}",
            ]  # fmt: skip
            done = subprocess.run(command, capture_output=True, text=True, check=False)
            if done.returncode != 0 or not dist.m2_zip.is_file():
                raise NodeError(
                    f"{' '.join(command)} failed ({done.returncode}):\n{done.stdout[-2000:]}"
                    f"{done.stderr[-2000:]}"
                )
    home.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=home.parent, prefix=".unpack-"))
    with zipfile.ZipFile(dist.m2_zip) as archive:
        for info in archive.infolist():
            target = Path(archive.extract(info, staging))
            mode = (info.external_attr >> 16) & 0o777
            if mode:
                target.chmod(mode)
    (top,) = list(staging.iterdir())
    top.chmod(0o755)
    try:
        top.rename(home)
    except OSError:  # another process unpacked it first
        if not (home / "bin" / dist.engine).is_file():
            raise
    shutil.rmtree(staging, ignore_errors=True)
    return home


class Node:
    """One running single-node cluster; ``stop()`` ends it by its pid."""

    def __init__(self, dist: Distribution, workdir: Path) -> None:
        self.dist = dist
        self.workdir = workdir
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen[bytes] | None = None
        self.log_path = workdir / "stdout.log"

    def start(self, timeout: float = START_TIMEOUT) -> Node:
        dist = self.dist
        home = fetch(dist)
        java_home = find_java(dist)
        conf, data, logs, tmp = (self.workdir / n for n in ("config", "data", "logs", "tmp"))
        shutil.copytree(home / "config", conf)
        for path in (data, logs, tmp):
            path.mkdir(parents=True)
        # jvm.options writes GC logs, heap dumps and error files relative to the home directory
        options = conf / "jvm.options"
        text = options.read_text(encoding="utf-8")
        for relative in ("logs/", "=data", "=logs"):
            absolute = relative.replace("logs", str(logs)).replace("data", str(data))
            text = text.replace(relative, absolute)
        options.write_text(text, encoding="utf-8")
        settings = {
            "cluster.name": f"sekimori-test-{self.port}",
            "node.name": "node-1",
            "discovery.type": "single-node",
            "network.host": "127.0.0.1",
            "http.port": str(self.port),
            "transport.port": str(free_port()),
            "path.data": str(data),
            "path.logs": str(logs),
            "cluster.routing.allocation.disk.threshold_enabled": "false",
            **dist.settings,
        }
        command = [str(home / "bin" / dist.engine)]
        command += [f"-E{key}={value}" for key, value in settings.items()]
        prefix = dist.env_prefix
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(self.workdir),
            f"{prefix}_JAVA_HOME": str(java_home),
            "JAVA_HOME": str(java_home),
            f"{prefix}_JAVA_OPTS": HEAP,
            f"{prefix}_PATH_CONF": str(conf),
            f"{prefix}_TMPDIR": str(tmp),
        }
        if os.geteuid() == 0:  # the engines refuse to run as root
            subprocess.run(["chown", "-R", "nobody:nogroup", str(self.workdir)], check=True)
            command = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", *command]
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(
                command,
                cwd=self.workdir,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self._wait_healthy(timeout)
        return self

    def _wait_healthy(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                raise NodeError(
                    f"{self.dist.engine} exited ({self.process.returncode})\n{self.tail()}"
                )
            try:
                with urllib.request.urlopen(  # noqa: S310 - our own http://127.0.0.1 URL
                    f"{self.url}/_cluster/health?wait_for_status=yellow&timeout=2s", timeout=5
                ) as response:
                    if json.load(response).get("status") in ("green", "yellow"):
                        return
            except OSError:
                pass
            time.sleep(0.5)
        self.stop()
        raise NodeError(f"{self.dist.engine} not healthy within {timeout:.0f}s\n{self.tail()}")

    def tail(self, lines: int = 40) -> str:
        text = (
            self.log_path.read_text(encoding="utf-8", errors="replace")
            if self.log_path.exists()
            else ""
        )
        return "\n".join(text.splitlines()[-lines:])

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)  # the group this node's start created
            process.wait(10)


def start_node(engine: str, workdir: Path) -> Node:
    return Node(DISTRIBUTIONS[engine], workdir).start()


def main(argv: list[str]) -> int:
    if argv[:1] == ["fetch"]:
        for dist in DISTRIBUTIONS.values():
            print(dist.engine, dist.version, fetch(dist), "java:", find_java(dist))
        return 0
    if len(argv) == 2 and argv[0] == "run":
        node = start_node(argv[1], Path(tempfile.mkdtemp(prefix=f"sekimori-{argv[1]}-")))
        print(node.url, "pid", node.process.pid if node.process else None, flush=True)

        def interrupt(signum: int, frame: object) -> None:
            raise KeyboardInterrupt

        signal.signal(signal.SIGTERM, interrupt)  # background jobs ignore SIGINT
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            node.stop()
        return 0
    print(__doc__)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
