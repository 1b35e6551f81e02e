"""Who a bearer token belongs to, and what they may do.

Staff tokens are random strings handed out by ``revsync tokens new``; only their SHA-256
digest is configured (``REVSYNC_OPERATOR_TOKENS``), so the settings, an ``.env`` file or a
leaked config dump never hold a usable token. A plain digest (no salt, no stretching) is
right here because tokens are 256 random bits, not passwords a person chose: nothing can be
guessed from the digest.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from enum import StrEnum
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from domain.approval import ApproverRole

TOKEN_PREFIX = "rvs_"


class StaffRole(StrEnum):
    """What a token holder may do. The three approver roles approve and reject quotes (ranked
    as :class:`~domain.approval.ApproverRole` says); ``operator`` resolves parked sagas;
    ``payload_reader`` may decrypt payloads through the codec server (the Web UI);
    ``data_steward`` merges or keeps apart suspected duplicate customers and settles
    proposals of non-owner systems."""

    SALES_MANAGER = "sales_manager"
    DEAL_DESK = "deal_desk"
    FINANCE = "finance"
    OPERATOR = "operator"
    PAYLOAD_READER = "payload_reader"
    DATA_STEWARD = "data_steward"

    @property
    def approver_role(self) -> ApproverRole | None:
        try:
            return ApproverRole(self.value)
        except ValueError:
            return None


Sha256Hex = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]


class StaffToken(BaseModel):
    """One configured token: the person it stands for, their roles, and the token's digest."""

    model_config = ConfigDict(frozen=True)

    name: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=120)]
    roles: frozenset[StaffRole] = Field(min_length=1)
    token_sha256: Sha256Hex


class Staff(BaseModel):
    """An authenticated person: what the audit trail records as *who*."""

    model_config = ConfigDict(frozen=True)

    name: str
    roles: frozenset[StaffRole]

    def has(self, role: StaffRole) -> bool:
        return role in self.roles

    def approver_role(self, wanted: ApproverRole | None = None) -> ApproverRole | None:
        """The approver role this person acts in: ``wanted`` if they hold it, else their
        highest one; None when they hold no approver role (or not ``wanted``)."""
        held = [r.approver_role for r in self.roles if r.approver_role is not None]
        if wanted is not None:
            return wanted if wanted in held else None
        return max(held, key=lambda role: role.rank) if held else None


def digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_token() -> str:
    """A fresh random token (256 bits), recognisable by its prefix in a secret scanner."""
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


class TokenRegistry:
    """Looks bearer tokens up by digest. Compares in constant time."""

    def __init__(self, entries: list[StaffToken]) -> None:
        self._entries = list(entries)

    def __len__(self) -> int:
        return len(self._entries)

    def authenticate(self, token: str | None) -> Staff | None:
        if not token:
            return None
        presented = digest(token)
        found: StaffToken | None = None
        for entry in self._entries:
            if hmac.compare_digest(entry.token_sha256, presented):
                found = entry
        return None if found is None else Staff(name=found.name, roles=found.roles)


def bearer_token(authorization: str | None) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header value, else None."""
    if not authorization:
        return None
    scheme, _, token = authorization.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()
