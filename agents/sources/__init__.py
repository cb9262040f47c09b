"""Telemetry sources: small plugins with ``check_compatible()`` and a generator of records."""
