"""The benign baseline: a scripted normal workday that must raise no alert.

Staff PCs browse and download through the security cloud's proxy (plain GET and CONNECT
tunnels), resolve names at the designated resolver, keep time with NTP-like requests to the
infrastructure segment, and an administrator runs the usual inspection commands on staff PCs
and servers. Web requests are spaced irregularly (people are not periodic).
"""

from __future__ import annotations

from typing import Final

from collector.lab.scenarios import Parts, Step, tool

ADMIN_COMMANDS: Final = (
    ("ls", "-la", "/etc/hostname"),
    ("ps", "aux"),
    ("uname", "-a"),
    ("df", "-h"),
    ("id",),
    ("ip", "addr"),
)


def baseline_steps(p: Parts) -> tuple[Step, ...]:
    proxy = f"http://{p.proxy.address}:3128"
    web = f"http://{p.outside.address}"
    steps: list[Step] = [
        # NTP-like time sync from the second staff PC, in the background
        Step(
            part="staff2",
            argv=tool("staff2", "ntp", p.resolver.address, "6", "1.5").argv,
            background=True,
            hold=12.0,
        ),
        tool("staff", "lookup", p.resolver.address, "www.example.com", "deb.example.com"),
        tool("staff2", "lookup", p.resolver.address, f"{p.lgwan.name}.lab.test", "nosuch.test"),
    ]
    for part, path in (("staff", "/index.html"), ("staff2", "/"), ("staff", "/index.html")):
        steps.append(
            Step(part=part, argv=("curl", "-s", "--max-time", "5", "-x", proxy, web + path))
        )
        steps.append(Step(part=part, argv=("sleep", "0.7" if part == "staff" else "1.9")))
    steps.append(  # an HTTPS-style CONNECT tunnel through the proxy
        Step(part="staff", argv=("curl", "-s", "--max-time", "5", "-p", "-x", proxy, web + "/"))
    )
    for name in ("libfoo_1.2-1_amd64.deb", "libbar_0.9-3_amd64.deb"):  # apt-like downloads
        steps.append(
            Step(
                part="staff2",
                argv=(
                    "curl",
                    "-s",
                    "--max-time",
                    "10",
                    "-o",
                    "/dev/null",
                    "-x",
                    proxy,
                    f"{web}/pool/main/{name}",
                ),
            )
        )
    for part in ("staff", "lgwan", "mynumber"):
        steps.extend(Step(part=part, argv=command) for command in ADMIN_COMMANDS)
    return tuple(steps)
