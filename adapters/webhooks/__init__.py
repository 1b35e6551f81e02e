"""Inbound webhooks: signature schemes and payload parsing, one module per source."""
