"""Canonical revenue models and pure business rules.

Nothing in this package performs I/O, so every module is safe to import inside the
Temporal workflow sandbox.
"""
