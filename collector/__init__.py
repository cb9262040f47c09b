"""Sekimori collector: ingest, validation, zone enrichment, stores, alerts, timeline."""
