"""Benchmarks: figures printed and recorded in ``bench/results/``, never asserted.

Each module runs alone (``python -m bench.saga_overhead --help``); ``python -m bench.run_all``
(``make bench``) runs them all with modest defaults. See ``bench/README.md``.
"""
