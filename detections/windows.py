"""Windows events: flatten EVTX records, and route Sigma Windows logsources by channel + EventID.

Two shapes of Windows event reach the engine, and both end up as one flat dict of Sysmon /
Security field names (``EventID``, ``Channel``, ``Provider_Name``, ``Computer``, then every
``EventData``/``UserData`` field), which is what SigmaHQ rules are written against:

- EVTX records (``evtx`` package, JSON form ``{"Event": {"System": ..., "EventData": ...}}``);
- OTRF / NXLog / Winlogbeat-free JSON lines, already flat (``SourceName`` becomes
  ``Provider_Name`` when that is absent).

Routing follows the SigmaHQ reference mapping (tests/thor.yml in SigmaHQ/sigma and pySigma's
``windows_logsource_mapping``): ``category: process_creation`` is Sysmon EventID 1 or Security
4688, ``image_load`` is Sysmon 7, ``ps_script`` is PowerShell 4104, a ``service`` is its channel.
So a process_creation rule never sees an image-load event.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

SYSMON: Final = "microsoft-windows-sysmon/operational"
SECURITY: Final = "security"
POWERSHELL: Final = ("microsoft-windows-powershell/operational", "powershellcore/operational")
CLASSIC_PS: Final = ("windows powershell",)
DEFENDER: Final = "microsoft-windows-windows defender/operational"
ANY_CHANNEL: Final = "*"

# category -> ((channel, EventID), ...)
CATEGORY_EVENTS: Final[dict[str, tuple[tuple[str, int], ...]]] = {
    "process_creation": ((SYSMON, 1), (SECURITY, 4688)),
    "file_change": ((SYSMON, 2),),
    "network_connection": ((SYSMON, 3),),
    "sysmon_status": ((SYSMON, 4), (SYSMON, 16)),
    "process_termination": ((SYSMON, 5),),
    "driver_load": ((SYSMON, 6),),
    "image_load": ((SYSMON, 7),),
    "create_remote_thread": ((SYSMON, 8),),
    "raw_access_thread": ((SYSMON, 9),),
    "process_access": ((SYSMON, 10),),
    "file_event": ((SYSMON, 11),),
    "registry_event": ((SYSMON, 12), (SYSMON, 13), (SYSMON, 14)),
    "registry_add": ((SYSMON, 12),),
    "registry_delete": ((SYSMON, 12),),
    "registry_set": ((SYSMON, 13),),
    "registry_rename": ((SYSMON, 14),),
    "create_stream_hash": ((SYSMON, 15),),
    "pipe_created": ((SYSMON, 17), (SYSMON, 18)),
    "wmi_event": ((SYSMON, 19), (SYSMON, 20), (SYSMON, 21)),
    "dns_query": ((SYSMON, 22),),
    "file_delete": ((SYSMON, 23),),
    "clipboard_change": ((SYSMON, 24),),
    "process_tampering": ((SYSMON, 25),),
    "file_delete_detected": ((SYSMON, 26),),
    "file_block_executable": ((SYSMON, 27),),
    "file_block_shredding": ((SYSMON, 28),),
    "file_executable_detected": ((SYSMON, 29),),
    "sysmon_error": ((SYSMON, 255),),
    "ps_module": tuple((c, 4103) for c in POWERSHELL),
    "ps_script": tuple((c, 4104) for c in POWERSHELL),
    "ps_classic_start": tuple((c, 400) for c in CLASSIC_PS),
    "ps_classic_provider_start": tuple((c, 600) for c in CLASSIC_PS),
    "ps_classic_script": tuple((c, 800) for c in CLASSIC_PS),
    "antivirus": tuple(
        (DEFENDER, e)
        for e in (1006, 1007, 1008, 1009, 1010, 1011, 1012, 1017, 1018, 1019, 1115, 1116)
    ),
}

# Categories sekimori knows but no Windows log source produces (ETW-only in the reference).
UNPRODUCED_CATEGORIES: Final = frozenset({"file_access", "file_rename"})

SERVICE_CHANNELS: Final[dict[str, tuple[str, ...]]] = {
    "security": (SECURITY,),
    "application": ("application",),
    "system": ("system",),
    "sysmon": (SYSMON,),
    "powershell": POWERSHELL,
    "powershell-classic": CLASSIC_PS,
    "taskscheduler": ("microsoft-windows-taskscheduler/operational",),
    "wmi": ("microsoft-windows-wmi-activity/operational",),
    "dns-server": ("dns server",),
    "dns-server-audit": ("microsoft-windows-dns-server/audit",),
    "dns-server-analytic": ("microsoft-windows-dns-server/analytical",),
    "driver-framework": ("microsoft-windows-driverframeworks-usermode/operational",),
    "ntlm": ("microsoft-windows-ntlm/operational",),
    "dhcp": ("microsoft-windows-dhcp-server/operational",),
    "msexchange-management": ("msexchange management",),
    "applocker": tuple(
        f"microsoft-windows-applocker/{name}"
        for name in (
            "msi and script",
            "exe and dll",
            "packaged app-deployment",
            "packaged app-execution",
        )
    ),
    "printservice-admin": ("microsoft-windows-printservice/admin",),
    "printservice-operational": ("microsoft-windows-printservice/operational",),
    "codeintegrity-operational": ("microsoft-windows-codeintegrity/operational",),
    "smbclient-security": ("microsoft-windows-smbclient/security",),
    "smbclient-connectivity": ("microsoft-windows-smbclient/connectivity",),
    "smbserver-connectivity": ("microsoft-windows-smbserver/connectivity",),
    "firewall-as": ("microsoft-windows-windows firewall with advanced security/firewall",),
    "bits-client": ("microsoft-windows-bits-client/operational",),
    "windefend": (DEFENDER,),
    "terminalservices-localsessionmanager": (
        "microsoft-windows-terminalservices-localsessionmanager/operational",
    ),
    "microsoft-servicebus-client": (
        "microsoft-servicebus-client/admin",
        "microsoft-servicebus-client/operational",
    ),
    "ldap": ("microsoft-windows-ldap-client/debug",),
    "ldap_debug": ("microsoft-windows-ldap-client/debug",),
    "security-mitigations": (
        "microsoft-windows-security-mitigations/kernel mode",
        "microsoft-windows-security-mitigations/user mode",
    ),
    "diagnosis-scripted": ("microsoft-windows-diagnosis-scripted/operational",),
    "shell-core": ("microsoft-windows-shell-core/operational",),
    "openssh": ("openssh/operational",),
    "bitlocker": ("microsoft-windows-bitlocker/bitlocker management",),
    "vhdmp": ("microsoft-windows-vhdmp/operational",),
    "appxdeployment-server": ("microsoft-windows-appxdeploymentserver/operational",),
    "lsa-server": ("microsoft-windows-lsa/operational",),
    "appxpackaging-om": ("microsoft-windows-appxpackaging/operational",),
    "dns-client": ("microsoft-windows-dns client events/operational",),
    "appmodel-runtime": ("microsoft-windows-appmodel-runtime/admin",),
    "capi2": ("microsoft-windows-capi2/operational",),
    "certificateservicesclient-lifecycle-system": (
        "microsoft-windows-certificateservicesclient-lifecycle-system/operational",
    ),
    "iis-configuration": ("microsoft-iis-configuration/operational",),
    "kernel-shimengine": (
        "microsoft-windows-kernel-shimengine/operational",
        "microsoft-windows-kernel-shimengine/diagnostic",
    ),
    "ntfs": ("microsoft-windows-ntfs/operational",),
    "sense": ("microsoft-windows-sense/operational",),
}

# Field aliases applied to an event view before matching, by (channel, EventID): Security
# 4688 names the image NewProcessName, Defender names the signature ThreatName.
EVENT_ALIASES: Final[dict[tuple[str, int], tuple[tuple[str, str], ...]]] = {
    (SECURITY, 4688): (("Image", "NewProcessName"), ("ParentImage", "ParentProcessName")),
    **{
        (DEFENDER, e): (("Signature", "ThreatName"), ("Filename", "Path"))
        for _, e in CATEGORY_EVENTS["antivirus"]
    },
}


def event_key(event: Mapping[str, Any]) -> tuple[str, int] | None:
    """(lower-case channel, EventID) of a flat Windows event; None if it is not one."""
    channel = event.get("Channel")
    if not isinstance(channel, str):
        return None
    eid = event.get("EventID")
    if type(eid) is not int:
        try:
            eid = int(eid)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            return None
    return channel.lower(), eid


def with_aliases(event: dict[str, Any], key: tuple[str, int]) -> dict[str, Any]:
    """The event as rules see it: a copy with alias fields added where the key needs them."""
    aliases = EVENT_ALIASES.get(key)
    if not aliases:
        return event
    view = dict(event)
    for alias, source in aliases:
        if alias not in view and source in view:
            view[alias] = view[source]
    return view


def flatten_record(record: Mapping[str, Any]) -> dict[str, Any]:
    """An EVTX record (JSON form with ``Event``) or an already-flat event -> flat event.

    An already-flat dict is returned itself (``Provider_Name`` added in place when needed)."""
    root = record.get("Event")
    if root is None or not isinstance(root, Mapping):  # None first: no ABC check
        same = record if isinstance(record, dict) else dict(record)
        if "SourceName" in same and "Provider_Name" not in same:
            same["Provider_Name"] = same["SourceName"]
        return same
    flat: dict[str, Any] = {}
    system = root.get("System")
    if isinstance(system, Mapping):
        _system_fields(system, flat)
    for section in ("EventData", "UserData"):
        data = root.get(section)
        if isinstance(data, Mapping):
            _data_fields(data, flat, nested=section == "UserData")
    return flat


def _text(value: Any) -> Any:
    if isinstance(value, Mapping):
        return value.get("#text")
    return value


def _system_fields(system: Mapping[str, Any], flat: dict[str, Any]) -> None:
    for name, value in system.items():
        if name == "Provider" and isinstance(value, Mapping):
            for attr, attr_value in (value.get("#attributes") or {}).items():
                flat[f"Provider_{attr}"] = attr_value
        elif name == "TimeCreated" and isinstance(value, Mapping):
            flat["TimeCreated"] = (value.get("#attributes") or {}).get("SystemTime")
        elif name in ("Execution", "Security", "Correlation") and isinstance(value, Mapping):
            for attr, attr_value in (value.get("#attributes") or {}).items():
                flat[f"{name}_{attr}"] = attr_value
        elif name == "EventID" and isinstance(value, Mapping):
            flat["EventID"] = value.get("#text")
            qualifiers = (value.get("#attributes") or {}).get("Qualifiers")
            if qualifiers is not None:
                flat["EventID_Qualifiers"] = qualifiers
        elif not isinstance(value, Mapping):
            flat[name] = value


def _data_fields(data: Mapping[str, Any], flat: dict[str, Any], *, nested: bool) -> None:
    for name, value in data.items():
        if name == "#attributes":
            continue
        if nested and isinstance(value, Mapping):  # UserData: <Element xmlns=...><Field/>
            _data_fields(value, flat, nested=False)
        else:
            flat[name] = _text(value)
