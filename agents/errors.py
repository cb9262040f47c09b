"""The one error root for all of sekimori.

Every domain error derives from :class:`SekimoriError`. It carries an optional source location
(file, line) and a remedy, so the CLI can say what went wrong *and* what to do next, and maps
``exit_code`` to the process exit status. It lives in ``agents`` because that package is the
bottom of the dependency order (cli -> playbooks -> collector -> detections -> agents).
"""

from __future__ import annotations


class SekimoriError(Exception):
    """Base of every sekimori error."""

    exit_code: int = 1

    def __init__(
        self,
        message: str,
        *,
        source: str | None = None,
        line: int | None = None,
        remedy: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.source = source
        self.line = line
        self.remedy = remedy

    def __str__(self) -> str:
        where = ""
        if self.source:
            where = f"{self.source}:{self.line}: " if self.line else f"{self.source}: "
        return f"{where}{self.message}"


class ConfigError(SekimoriError):
    """Bad configuration: zones.yaml, agent/collector config, CLI options."""

    exit_code = 2


class InputError(SekimoriError):
    """Bad input data: malformed JSON, wrong types, unknown fields, oversized batches."""

    exit_code = 3


class RuleError(SekimoriError):
    """A Sigma rule that cannot be parsed or compiled."""

    exit_code = 4


class PlaybookError(SekimoriError):
    """A playbook that cannot be loaded or run."""

    exit_code = 5


class StoreError(SekimoriError):
    """The event store failed or is unreachable."""

    exit_code = 6


class NotFoundError(SekimoriError):
    """An alert, host or record that does not exist."""

    exit_code = 7


class TransportError(SekimoriError):
    """Agent-to-collector delivery failed (network, TLS, HTTP status)."""

    exit_code = 8


class PermissionDenied(SekimoriError):  # noqa: N818 - public name kept
    """A privilege is missing (e.g. root for the netlink process connector)."""

    exit_code = 9


class CheckFailed(SekimoriError):  # noqa: N818 - reads as a verdict
    """A check ran and found problems (audit verify, rules validate/test, demo)."""

    exit_code = 10


class AuthError(SekimoriError):
    """Authentication or authorisation refused: enrollment token, client certificate,
    revoked identity, a batch claiming another agent."""

    exit_code = 10
