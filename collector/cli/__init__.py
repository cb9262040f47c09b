"""Click command groups for the collector side (wired into the ``sekimori`` root in cli.py)."""
