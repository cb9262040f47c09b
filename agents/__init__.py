"""Sekimori endpoint agent: telemetry sources, durable spool, shipper.

The agent runtime depends only on the standard library (plus ``cryptography`` for enrollment
later) and never imports collector, detections, playbooks, click, pySigma or search clients.
"""

__version__ = "0.1.0"
