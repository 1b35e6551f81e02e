"""I/O with vendor systems, behind the ports in :mod:`adapters.ports`."""
