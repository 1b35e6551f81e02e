"""Chaos runs: the whole local stack under vendor faults, duplicate and out-of-order
deliveries, killed workers and a killed Temporal server, then invariants checked on what every
system holds (``python -m chaos.run --quotes 300``; docs/chaos.md)."""
