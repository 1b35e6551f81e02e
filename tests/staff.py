"""Secrets and staff tokens the tests configure: generated per run, never from code paths
that production uses."""

from __future__ import annotations

import secrets
from typing import Any

from revsync.auth import StaffRole, StaffToken, digest, new_token
from revsync.codec import generate_key_entry

# name -> roles; the names are the identities the audit trail must show.
STAFF: dict[str, frozenset[StaffRole]] = {
    "Fiona Finance <fiona@example.com>": frozenset({StaffRole.FINANCE}),
    "Sam Manager <sam@example.com>": frozenset({StaffRole.SALES_MANAGER}),
    "Oscar Ops <oscar@example.com>": frozenset({StaffRole.OPERATOR}),
    "Rita Reader <rita@example.com>": frozenset({StaffRole.PAYLOAD_READER}),
    "Dana Steward <dana@example.com>": frozenset({StaffRole.DATA_STEWARD}),
}
TOKENS: dict[str, str] = {name: new_token() for name in STAFF}


def token_of(name_start: str) -> str:
    """The token of the staff member whose name starts with ``name_start``."""
    (token,) = [t for n, t in TOKENS.items() if n.startswith(name_start)]
    return token


def secret_settings() -> dict[str, Any]:
    """Settings keyword arguments for every secret revsync needs, random per test run."""
    return {
        "payload_keys": generate_key_entry("test-1"),
        "cpq_webhook_secret": "whsec_" + secrets.token_hex(16),
        "stripe_webhook_secret": "whsec_" + secrets.token_hex(16),
        "erp_webhook_secret": secrets.token_hex(16),
        "hubspot_client_secret": secrets.token_hex(16),
        "temporal_api_key": None,
        "operator_tokens": [
            StaffToken(name=name, roles=roles, token_sha256=digest(TOKENS[name]))
            for name, roles in STAFF.items()
        ],
        "operator_token": TOKENS["Fiona Finance <fiona@example.com>"],
    }
