"""The gateway's published contracts: its OpenAPI document and the JSON Schemas of events and
webhook payloads.

- ``GET /v1/openapi.json``: the OpenAPI 3.1 document (``info.version`` is the API's major
  version, the ``/v1`` of the paths); ``GET /openapi.json`` redirects there (308);
  ``GET /v1/docs`` renders it (Swagger UI).
- ``GET /v1/schemas``: the index of the current schemas; ``GET /v1/schemas/<kind>/<file>``
  one of them (the file committed under ``schemas/``, as :mod:`revsync.schemas` generates
  it). An event's ``dataschema`` points here.

None of these needs a token: they describe the API, they hold no data.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from fastapi import FastAPI
from fastapi.responses import JSONResponse, RedirectResponse
from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from adapters.webhooks.customer_changes import ErpCustomerChanged
from adapters.webhooks.hubspot import HubSpotEvent
from adapters.webhooks.stripe import StripeEvent
from domain.quote import Quote
from revsync.gateway import codec_server
from revsync.gateway.customer_changes import CustomerChangeApplied, CustomerChangeIgnored
from revsync.gateway.refusals import problem
from revsync.gateway.versioning import (
    API_PREFIX,
    API_VERSION,
    EventIgnored,
    InvoiceEventDelivered,
)
from revsync.schemas import CONTRACTS, contract_for, published

OPENAPI_URL = f"{API_PREFIX}/openapi.json"
CODEC_MOUNT = "/codec"
DOCS_URL = f"{API_PREFIX}/docs"
SCHEMAS_URL = f"{API_PREFIX}/schemas"
SCHEMA_MEDIA_TYPE = "application/schema+json"

DESCRIPTION = """\
revsync's HTTP intake: signed vendor webhooks that start quote-to-cash sagas, the ops API for
operator decisions (staff bearer tokens), and the schemas of what revsync accepts and emits.

Versioning: the major version is in the path (`/v1/...`) and in `info.version`. Within a
version changes are additive only; a breaking change is a new version. The unversioned
`/webhooks/...` paths are deprecated aliases of `/v1/webhooks/...` (same handlers, answers
carry `Deprecation` and `Link: rel="successor-version"`). Policy: docs/api.md.
"""

TAGS = [
    {"name": "webhooks", "description": "Vendor deliveries, verified before they are read"},
    {"name": "ops", "description": "Operator decisions on sagas (staff bearer token)"},
    {"name": "contracts", "description": "The OpenAPI document and the JSON Schemas"},
    {"name": "codec", "description": "Decrypts payloads for the Web UI (payload_reader token)"},
]

# FastAPI(**FASTAPI_OPTIONS): title, version and where the document is served.
FASTAPI_OPTIONS: dict[str, Any] = {
    "title": "revsync gateway",
    "version": str(API_VERSION),
    "description": DESCRIPTION,
    "openapi_tags": TAGS,
    "openapi_url": OPENAPI_URL,
    "docs_url": DOCS_URL,
    "redoc_url": None,
}

# Models the webhook routes reference as #/components/schemas/<name> without FastAPI seeing
# them (the handlers read raw bytes, to verify signatures before parsing).
_PAYLOADS: list[tuple[type[BaseModel], str]] = [
    (Quote, "validation"),
    (StripeEvent, "validation"),
    (HubSpotEvent, "validation"),
    (EventIgnored, "serialization"),
    (InvoiceEventDelivered, "serialization"),
    (ErpCustomerChanged, "validation"),
    (CustomerChangeApplied, "serialization"),
    (CustomerChangeIgnored, "serialization"),
]


@cache
def payload_components() -> dict[str, Any]:
    _, definitions = models_json_schema(
        [(model, mode) for model, mode in _PAYLOADS],  # type: ignore[misc]
        ref_template="#/components/schemas/{model}",
    )
    components: dict[str, Any] = definitions.get("$defs", {})
    return components


def add_payload_components(document: dict[str, Any]) -> dict[str, Any]:
    """``document`` with the webhook payload models among its components (idempotent)."""
    schemas = document.setdefault("components", {}).setdefault("schemas", {})
    for name, schema in payload_components().items():
        if schemas.get(name, schema) != schema:
            raise ValueError(f"two different models are called {name} in the OpenAPI document")
        schemas[name] = schema
    document["components"]["schemas"] = dict(sorted(schemas.items()))
    return document


def install(app: FastAPI) -> None:
    """Complete ``app``'s OpenAPI document and serve the contracts. Build ``app`` with
    :data:`FASTAPI_OPTIONS`."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        document = add_payload_components(generate())
        # The codec server is a mounted app FastAPI does not describe: its operations too.
        document["paths"].update(codec_server.openapi_paths(CODEC_MOUNT))
        return document

    app.openapi = openapi  # type: ignore[method-assign]

    @app.get("/openapi.json", include_in_schema=False)
    async def unversioned_openapi() -> RedirectResponse:
        return RedirectResponse(OPENAPI_URL, status_code=308)

    @app.get(SCHEMAS_URL, tags=["contracts"], summary="The current JSON Schemas")
    async def schema_index() -> dict[str, list[dict[str, Any]]]:
        return {
            "schemas": [
                {
                    "name": contract.name,
                    "version": contract.version,
                    "url": f"{SCHEMAS_URL}/{contract.path}",
                    "description": contract.description,
                }
                for contract in CONTRACTS
            ]
        }

    @app.get(
        SCHEMAS_URL + "/{kind}/{file}",
        tags=["contracts"],
        summary="One JSON Schema, e.g. events/quote.booked.v1.json",
        responses={200: {"content": {SCHEMA_MEDIA_TYPE: {}}}, 404: {"description": "No such"}},
    )
    async def schema_document(kind: str, file: str) -> JSONResponse:
        path = f"{kind}/{file}"
        contract = contract_for(path)
        if contract is None:
            return problem(404, f"no schema {path}")
        document = app.openapi() if contract.compatibility == "openapi" else published(path)
        return JSONResponse(document, media_type=SCHEMA_MEDIA_TYPE)
