"""revsync: durable revenue-operations sagas on Temporal."""

__version__ = "0.1.0"
