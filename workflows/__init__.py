"""Deterministic orchestration. Nothing here performs I/O or imports an adapter."""
