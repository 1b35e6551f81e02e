"""A business rule's "no": what an adapter must refuse, said once in ``domain/`` and raised by
every adapter as its vendor's rejection (``adapters.errors.enforce``)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Refusal:
    """Why a request must not be sent: a stable code and a message for the operator."""

    code: str
    message: str
