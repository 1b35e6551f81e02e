"""Stateful local emulators of the vendor APIs, with fault injection. Dev and tests only:
nothing in the product imports this package."""
