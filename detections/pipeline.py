"""pySigma processing pipeline: Sigma field names -> sekimori's ECS fields (Linux and network).

pySigma ships ``ecs_windows`` but nothing for Linux endpoints, so this is ours (DNS and flow
names included, for the network sensor's ``dns`` and ``network_flow`` events). Field names the
mapping does not know (for instance ECS names such as ``sekimori.zone.destination`` written
directly in a rule) pass through unchanged. Fields we have no data for (``Hashes`` entries
other than SHA256, ``DestinationHostname``) are mapped to names no event carries, so they never
match instead of silently matching something else.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Final

from sigma.processing.pipeline import ProcessingItem, ProcessingPipeline
from sigma.processing.transformations import (
    FieldMappingTransformation,
    HashesFieldsDetectionItemTransformation,
    ValueListPlaceholderTransformation,
)

Placeholders = Mapping[str, Sequence[str]]
WINDOWS_PIPELINE_NAME: Final = "sekimori_windows"

PIPELINE_NAME: Final = "sekimori_linux_ecs"

# Sigma (Sysmon-style) field name -> dotted ECS path in sekimori events.
SIGMA_TO_ECS: Final[Mapping[str, str]] = {
    # process_creation / process_termination
    "Image": "process.executable",
    "CommandLine": "process.command_line",
    "ParentImage": "process.parent.executable",
    "ParentCommandLine": "process.parent.command_line",
    "ProcessId": "process.pid",
    "ParentProcessId": "process.parent.pid",
    "CurrentDirectory": "process.working_directory",
    "User": "user.name",
    "LogonId": "user.id",
    "OriginalFileName": "process.name",
    "ProcessGuid": "process.entity_id",
    "ParentProcessGuid": "process.parent.entity_id",
    "Hash_SHA256": "process.hash.sha256",
    "sha256": "process.hash.sha256",
    "SHA256": "process.hash.sha256",
    # network_connection / network_listen
    "DestinationIp": "destination.ip",
    "DestinationPort": "destination.port",
    "SourceIp": "source.ip",
    "SourcePort": "source.port",
    "Protocol": "network.transport",
    "Initiated": "network.direction",
    # dns (Sigma taxonomy; Sysmon DNS-query and Zeek dns.log names too) -> the sensor's fields
    "query": "dns.question.name",
    "QueryName": "dns.question.name",
    "answer": "dns.answers.data",
    "answers": "dns.answers.data",
    "QueryResults": "dns.answers.data",
    "record_type": "dns.question.type",
    "qtype_name": "dns.question.type",
    "QueryType": "dns.question.type",
    "response_code": "dns.response_code",
    "rcode_name": "dns.response_code",
    # Not produced (the sensor does not split names): a name no event carries.
    "parent_domain": "dns.question.registered_domain",
    # network_flow (Sigma firewall/zeek conn names) -> ECS
    "src_ip": "source.ip",
    "dst_ip": "destination.ip",
    "src_port": "source.port",
    "dst_port": "destination.port",
    # Not produced by the agent (no DNS resolution of peers): a name no event carries.
    "DestinationHostname": "destination.domain",
    "SourceHostname": "source.domain",
    # Event-level
    "Computer": "host.name",
    "ComputerName": "host.name",
}


def _mapping() -> dict[str | None, str | list[str]]:
    mapping: dict[str | None, str | list[str]] = {}
    mapping.update(SIGMA_TO_ECS)
    return mapping


def _placeholder_items(placeholders: Placeholders | None) -> list[ProcessingItem]:
    """``|expand`` placeholders named in ``placeholders`` become value lists; others stay and
    make the rule unsupported with a clear reason."""
    if not placeholders:
        return []
    return [
        ProcessingItem(
            identifier="sekimori_placeholders",
            transformation=ValueListPlaceholderTransformation(include=sorted(placeholders)),
        )
    ]


def _vars(placeholders: Placeholders | None) -> dict[str, list[str]]:
    return {name: list(values) for name, values in (placeholders or {}).items()}


def windows_pipeline(placeholders: Placeholders | None = None) -> ProcessingPipeline:
    """Windows rules are evaluated on flat Sysmon/Security field names: no field mapping, only
    placeholder expansion (Security 4688 / Defender aliases are added to events instead)."""
    return ProcessingPipeline(
        name=WINDOWS_PIPELINE_NAME,
        priority=20,
        items=_placeholder_items(placeholders),
        vars=_vars(placeholders),
    )


def sekimori_pipeline(placeholders: Placeholders | None = None) -> ProcessingPipeline:
    """A fresh pipeline (pipelines carry per-apply state, so never share one across threads)."""
    return ProcessingPipeline(
        name=PIPELINE_NAME,
        priority=20,
        vars=_vars(placeholders),
        items=[
            *_placeholder_items(placeholders),
            ProcessingItem(
                identifier="sekimori_hashes",
                transformation=HashesFieldsDetectionItemTransformation(
                    valid_hash_algos=["MD5", "SHA1", "SHA256", "SHA512", "IMPHASH"],
                    field_prefix="Hash_",
                ),
            ),
            ProcessingItem(
                identifier="sekimori_field_mapping",
                transformation=FieldMappingTransformation(_mapping()),
            ),
        ],
    )
