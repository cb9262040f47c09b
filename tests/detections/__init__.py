"""Tests for the detections package: engine semantics, rule corpus, loading, differential."""
