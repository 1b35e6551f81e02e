"""Governed contracts: the versioned JSON Schemas (and the OpenAPI document) revsync
publishes, generated from its models and committed under ``schemas/`` at the repository root.

Each :class:`Contract` in :data:`CONTRACTS` is a name (``events/quote.booked``), a version, a
generator and who reads it (:class:`~revsync.compat.Compatibility`). Its file is
``schemas/<name>.v<version>.json``. ``make schemas`` (``revsync schemas``, or
``python -m revsync.schemas``) regenerates the files of the current versions; it refuses to
overwrite a committed file with a breaking change: bump the contract's version instead (a new
file; the old one stays for consumers still on it). ``--check`` writes nothing and fails when
a file is stale, a change is breaking or a file belongs to no contract. docs/api.md has the
policy.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, TypeAdapter

from adapters.webhooks.customer_changes import ErpCustomerChanged
from adapters.webhooks.hubspot import MAX_EVENTS, HubSpotEvent
from adapters.webhooks.stripe import StripeEvent
from domain.events import ENVELOPES
from domain.quote import Quote
from revsync.compat import Change, Compatibility, breaking_changes, openapi_breaking_changes

DIALECT = "https://json-schema.org/draft/2020-12/schema"
SCHEMAS_DIR = Path(__file__).resolve().parent.parent / "schemas"
_FILE = re.compile(r"^(?P<name>.+)\.v(?P<version>[1-9][0-9]*)\.json$")

Document = dict[str, Any]


@dataclass(frozen=True)
class Contract:
    """One published contract at its current version."""

    name: str
    version: int
    compatibility: Compatibility | Literal["openapi"]
    build: Callable[[], Document]
    description: str

    @property
    def path(self) -> str:
        """Its file, relative to ``schemas/``: ``events/quote.booked.v1.json``."""
        return f"{self.name}.v{self.version}.json"

    def generate(self) -> Document:
        return self.build()

    def breaking_changes(self, committed: Document, generated: Document) -> list[Change]:
        """What in ``generated`` breaks readers or writers of ``committed`` (same version)."""
        if self.compatibility == "openapi":
            return openapi_breaking_changes(committed, generated)
        return breaking_changes(committed, generated, self.compatibility)


def model_schema(
    model: type[BaseModel] | TypeAdapter[Any],
    *,
    mode: Literal["validation", "serialization"],
    file_name: str,
    title: str | None = None,
    description: str | None = None,
) -> Document:
    """The JSON Schema (2020-12) of ``model`` as one self-contained document. ``validation``
    describes what revsync accepts, ``serialization`` what it emits."""
    adapter = model if isinstance(model, TypeAdapter) else TypeAdapter(model)
    schema = adapter.json_schema(mode=mode)
    head: Document = {"$schema": DIALECT, "$id": file_name}
    for key, value in (("title", title), ("description", description)):
        if value is not None or key in schema:
            head[key] = value if value is not None else schema[key]
    return head | {k: v for k, v in schema.items() if k not in head}


def _model_contract(
    name: str,
    version: int,
    model: type[BaseModel] | TypeAdapter[Any],
    *,
    mode: Literal["validation", "serialization"],
    compatibility: Compatibility,
    description: str,
    title: str | None = None,
) -> Contract:
    file_name = f"{name.rsplit('/', 1)[-1]}.v{version}.json"
    return Contract(
        name=name,
        version=version,
        compatibility=compatibility,
        build=lambda: model_schema(
            model, mode=mode, file_name=file_name, title=title, description=description
        ),
        description=description,
    )


def gateway_openapi() -> Document:
    """The gateway's OpenAPI document, from the app itself (no Temporal connection, no
    secret from the environment: throwaway ones, which the document does not depend on)."""
    from revsync.codec import generate_key_entry
    from revsync.gateway.app import create_app
    from revsync.settings import Settings

    settings = Settings(
        _env_file=None,
        payload_keys=generate_key_entry("openapi"),
        cpq_webhook_secret="openapi",
    )
    return create_app(settings).openapi()


def _event_contracts() -> list[Contract]:
    contracts = []
    for data, envelope in ENVELOPES.items():
        contracts.append(
            _model_contract(
                f"events/{data.fact}",
                data.version,
                envelope,
                mode="serialization",
                compatibility=Compatibility.FULL,
                description=f"CloudEvents 1.0 event `{data.event_type()}`: "
                + " ".join((data.__doc__ or "").split()),
            )
        )
    return contracts


HubSpotBatch = TypeAdapter(
    Annotated[list[HubSpotEvent], Field(min_length=1, max_length=MAX_EVENTS)]
)


def _all_contracts() -> tuple[Contract, ...]:
    from revsync.gateway.versioning import API_VERSION

    return (
        *_event_contracts(),
        _model_contract(
            "webhooks/cpq.quote-accepted",
            1,
            Quote,
            mode="validation",
            compatibility=Compatibility.BACKWARD,
            description="Body of POST /v1/webhooks/cpq/quote-accepted: the quote a customer "
            "accepted in CPQ.",
        ),
        _model_contract(
            "webhooks/stripe.event",
            1,
            StripeEvent,
            mode="validation",
            compatibility=Compatibility.BACKWARD,
            description="Body of POST /v1/webhooks/stripe: the parts of a Stripe event "
            "envelope revsync reads (quote.accepted carries the Quote in data.object).",
        ),
        _model_contract(
            "webhooks/erp.customer-changed",
            1,
            ErpCustomerChanged,
            mode="validation",
            compatibility=Compatibility.BACKWARD,
            description="Body of POST /v1/webhooks/erp/customer-changed: one ERP customer's "
            "changed fields, as the NetSuite SuiteScript in docs/customer-master.md posts it.",
        ),
        _model_contract(
            "webhooks/hubspot.events",
            1,
            HubSpotBatch,
            mode="validation",
            compatibility=Compatibility.BACKWARD,
            title="HubSpotBatch",
            description="Body of POST /v1/webhooks/hubspot: a batch of HubSpot webhook events.",
        ),
        Contract(
            name="openapi/gateway",
            version=API_VERSION,
            compatibility="openapi",
            build=gateway_openapi,
            description="The gateway's HTTP API (served at GET /v1/openapi.json).",
        ),
    )


CONTRACTS: tuple[Contract, ...] = _all_contracts()


def contract_for(path: str) -> Contract | None:
    """The current contract whose file is ``path`` (``events/quote.booked.v1.json``)."""
    return next((c for c in CONTRACTS if c.path == path), None)


@cache
def published(path: str) -> Document | None:
    """The generated document of a current contract, for serving; None for any other path."""
    contract = contract_for(path)
    return None if contract is None else contract.generate()


# -- committed files ------------------------------------------------------------------------


def dump(document: Document) -> str:
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


def load(root: Path, path: str) -> tuple[Document, str] | None:
    """The committed document at ``path`` and its exact text, or None when absent."""
    file = root / path
    if not file.exists():
        return None
    text = file.read_text(encoding="utf-8")
    document = json.loads(text)
    if not isinstance(document, dict):
        raise ValueError(f"{file} is not a JSON object")
    return document, text


@dataclass(frozen=True)
class Finding:
    """Something wrong with the committed schemas; ``breaking`` ones need a version bump."""

    path: str
    message: str
    breaking: bool = False

    def __str__(self) -> str:
        return f"schemas/{self.path}: {self.message}"


def breaking(contract: Contract, committed: Document, generated: Document) -> Finding | None:
    changes = contract.breaking_changes(committed, generated)
    if not changes:
        return None
    listed = "".join(f"\n  - {change}" for change in changes)
    return Finding(
        contract.path,
        f"breaking change to {contract.name} v{contract.version} without a version bump "
        f"(bump its version in revsync/schemas.py, or in domain/events.py for an event):"
        f"{listed}",
        breaking=True,
    )


def unknown_files(root: Path, contracts: Sequence[Contract] = CONTRACTS) -> list[Finding]:
    """Committed files that are no current contract and no superseded version of one."""
    current = {c.name: c.version for c in contracts}
    findings = []
    for file in sorted(root.rglob("*.json")):
        path = file.relative_to(root).as_posix()
        match = _FILE.match(path)
        if match is None:
            findings.append(Finding(path, "not named <name>.v<version>.json"))
            continue
        version = current.get(match["name"])
        if version is None:
            findings.append(Finding(path, "belongs to no contract in revsync.schemas"))
        elif int(match["version"]) > version:
            findings.append(
                Finding(path, f"is newer than the current version v{version} of its contract")
            )
    return findings


def check(root: Path = SCHEMAS_DIR, contracts: Sequence[Contract] = CONTRACTS) -> list[Finding]:
    """Every way the files under ``root`` disagree with what the contracts generate."""
    findings = unknown_files(root, contracts)
    for contract in contracts:
        committed = load(root, contract.path)
        generated = contract.generate()
        if committed is None:
            findings.append(Finding(contract.path, "missing: run `make schemas`"))
            continue
        broken = breaking(contract, committed[0], generated)
        if broken is not None:
            findings.append(broken)
        elif committed[1] != dump(generated):
            findings.append(Finding(contract.path, "stale: run `make schemas` and commit it"))
    return findings


def write(
    root: Path = SCHEMAS_DIR, contracts: Sequence[Contract] = CONTRACTS
) -> tuple[list[str], list[Finding]]:
    """Regenerate the current versions' files: the paths written, and the breaking changes
    refused (those files are left as they are)."""
    written: list[str] = []
    refused: list[Finding] = []
    for contract in contracts:
        generated = contract.generate()
        committed = load(root, contract.path)
        if committed is not None:
            broken = breaking(contract, committed[0], generated)
            if broken is not None:
                refused.append(broken)
                continue
            if committed[1] == dump(generated):
                continue
        file = root / contract.path
        file.parent.mkdir(parents=True, exist_ok=True)
        file.write_text(dump(generated), encoding="utf-8")
        written.append(contract.path)
    return written, refused


def run(*, check_only: bool, root: Path = SCHEMAS_DIR) -> int:
    """``revsync schemas``: write (or only check) and report; the exit status."""
    if check_only:
        findings = check(root)
        for finding in findings:
            print(finding, file=sys.stderr)
        if not findings:
            print(f"{len(CONTRACTS)} contracts match schemas/")
        return 1 if findings else 0
    written, refused = write(root)
    for path in written:
        print(f"wrote schemas/{path}")
    for finding in refused:
        print(finding, file=sys.stderr)
    others = unknown_files(root)
    for finding in others:
        print(finding, file=sys.stderr)
    if not written and not refused:
        print(f"{len(CONTRACTS)} contracts, schemas/ up to date")
    return 1 if refused or others else 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m revsync.schemas", description="Regenerate or check schemas/."
    )
    action = parser.add_mutually_exclusive_group()
    action.add_argument("--write", action="store_true", help="regenerate (the default)")
    action.add_argument("--check", action="store_true", help="write nothing; fail on drift")
    parser.add_argument("--dir", type=Path, default=SCHEMAS_DIR, help="the schemas folder")
    args = parser.parse_args(argv)
    return run(check_only=args.check, root=args.dir)


if __name__ == "__main__":
    raise SystemExit(main())
