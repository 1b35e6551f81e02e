"""The ops API: operator decisions on running sagas, by people holding a staff token.

``POST /v1/ops/quotes/{quote_id}/approve | reject | resolve`` and
``POST /v1/ops/invoices/{invoice_id}/resolve`` (``?workflow_id=`` names the parked adjustment
of an ended invoice saga) with ``Authorization: Bearer <token>``.
*Who* decides comes from the token (``REVSYNC_OPERATOR_TOKENS``), never from the body: the
body only says what and why. The saga's update validators then apply the business rules
(role rank, self-approval, what a parked step allows) and record the decision, with who,
when, what and why, in its history and its ``status`` query.

- 200 the decision as the saga recorded it (``OperatorDecision``, ``InvoiceDecision``)
- 401 no or unknown token; 403 the token's holder lacks the role the action needs
- 404 no saga for the quote or invoice; 409 the saga refused (its reason is in ``error``)
- 422 invalid body
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, Any, Protocol, TypeVar

import structlog
from fastapi import APIRouter, Depends, Header, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from domain.approval import Approver, ApproverRole
from domain.invoice_contracts import invoice_workflow_id
from domain.saga import ApproveRequest, RejectRequest, ResolveAction, ResolveRequest
from revsync.auth import Staff, StaffRole, TokenRegistry, bearer_token
from revsync.gateway.refusals import Refused, problem, require_staff, staff_refusals
from revsync.invoice_operations import resolve_invoice
from revsync.operations import DecisionRefused, decide
from workflows import visibility

log = structlog.get_logger("revsync.gateway.ops")

OPS_PREFIX = "/v1/ops"

T = TypeVar("T")

# A decision's Idempotency-Key: sent again with the same key and body (a lost answer), the
# decision answers what it recorded the first time instead of 409 (revsync.operations).
IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        min_length=1,
        max_length=255,
        pattern=r"^[\x21-\x7e]+$",
        description="Any string of 1 to 255 visible ASCII characters, new for each decision; "
        "repeating the request with the same key answers the first result",
    ),
]

# Which adjustment of an invoice whose saga has ended to decide on, when several are parked
# (docs/invoice-to-revenue.md#late-events); without it, the saga, else its one parked
# adjustment.
AdjustmentId = Annotated[
    str | None,
    Query(
        min_length=1,
        max_length=1000,
        description="i2r-adj-<invoice id>-<kind>-<key>: the parked adjustment to decide on",
    ),
]


class ApproveBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    role: ApproverRole | None = Field(
        default=None, description="The approver role to act in; your highest when omitted"
    )
    note: str | None = Field(default=None, max_length=2000)


class RejectBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    role: ApproverRole | None = None
    reason: str = Field(min_length=1, max_length=2000, description="Shown in CRM and audited")


class ResolveBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    action: ResolveAction
    note: str = Field(min_length=1, max_length=2000, description="Why: kept in the audit trail")


def domain_request(build: Callable[[], T]) -> T:
    """The domain request ``build()`` makes of a body the route accepted. The domain has
    rules of its own (a note is trimmed and at most 255 characters: ``NonBlank``), so a body
    may pass the route's model and still not make a request: that is a 422 like any invalid
    body (FastAPI's shape, ``loc`` under ``body``), never a 500."""
    try:
        return build()
    except ValidationError as error:
        errors = error.errors(include_url=False, include_input=False, include_context=False)
        raise RequestValidationError(
            [{**item, "loc": ("body", *item["loc"])} for item in errors]
        ) from None


def _refused(status: int, reason: str) -> Refused:
    log.warning("ops request refused", status=status, reason=reason)
    return Refused(status, reason)


def _staff(request: Request) -> Staff:
    registry: TokenRegistry = request.app.state.tokens
    token = bearer_token(request.headers.get("authorization"))
    try:
        return require_staff(registry, token, missing="missing bearer token")
    except Refused as refused:
        log.warning("ops request refused", status=refused.status, reason=refused.reason)
        raise


StaffDep = Annotated[Staff, Depends(_staff)]


def require_role(staff: Staff, role: StaffRole) -> None:
    """403 unless the token's holder holds ``role``."""
    if not staff.has(role):
        raise _refused(403, f"{staff.name} does not hold the role {role.value}")


def _approver(staff: Staff, wanted: ApproverRole | None) -> Approver:
    role = staff.approver_role(wanted)
    if role is None:
        held = ", ".join(sorted(r.value for r in staff.roles))
        asked = f"the role {wanted.value}" if wanted else "an approver role"
        raise _refused(403, f"{staff.name} does not hold {asked} (holds: {held})")
    return Approver(name=staff.name, role=role)


class _Decision(Protocol):
    action: str

    def model_dump(self, *, mode: str) -> dict[str, Any]: ...


async def _answer(
    client: Client,
    sending: Awaitable[_Decision],
    subject: tuple[str, str],
    workflow_id: str,
    staff: Staff,
) -> JSONResponse:
    """The ops API's answer to one decision sent to a saga: 200 with what it recorded, 409
    when it refused or has ended, 404 when there is no saga. ``subject`` is ("quote", id) or
    ("invoice", id), for messages and log lines."""
    kind, key = subject
    try:
        decision = await sending
    except DecisionRefused as refused:
        log.info("decision refused", **{f"{kind}_id": key}, actor=staff.name, reason=str(refused))
        return problem(409, str(refused))
    except RPCError as error:
        if error.status is not RPCStatusCode.NOT_FOUND:
            raise
        # Temporal answers an update to a closed workflow as "not found" too.
        ended = await _ended_status(client, workflow_id)
        if ended is None:
            return problem(404, f"no saga for {kind} {key}")
        return problem(409, f"the saga for {kind} {key} has ended ({ended})")
    log.info("decision recorded", **{f"{kind}_id": key}, actor=staff.name, action=decision.action)
    return JSONResponse(decision.model_dump(mode="json"))


async def _send(
    client: Client,
    quote_id: str,
    request: ApproveRequest | RejectRequest | ResolveRequest,
    staff: Staff,
    idempotency_key: str | None,
) -> JSONResponse:
    workflow_id = visibility.workflow_id_for_quote(quote_id)
    sending = decide(client, quote_id, request, idempotency_key=idempotency_key)
    return await _answer(client, sending, ("quote", quote_id), workflow_id, staff)


async def _ended_status(client: Client, workflow_id: str) -> str | None:
    """The closed saga's execution status, or None when there is no saga at all."""
    handle = client.get_workflow_handle(workflow_id)
    try:
        described = await handle.describe()
    except RPCError as error:
        if error.status is RPCStatusCode.NOT_FOUND:
            return None
        raise
    return described.status.name.lower() if described.status else "closed"


def ops_router() -> APIRouter:
    router = APIRouter(prefix=OPS_PREFIX, tags=["ops"], responses=staff_refusals(401))

    @router.get("/whoami")
    async def whoami(staff: StaffDep) -> dict[str, object]:
        return {"name": staff.name, "roles": sorted(r.value for r in staff.roles)}

    @router.post("/quotes/{quote_id}/approve", responses=staff_refusals(400, 403, 404, 409))
    async def approve(
        quote_id: str,
        body: ApproveBody,
        staff: StaffDep,
        request: Request,
        idempotency_key: IdempotencyKey = None,
    ) -> JSONResponse:
        approver = _approver(staff, body.role)
        return await _send(
            request.app.state.client,
            quote_id,
            ApproveRequest(approver=approver, note=body.note),
            staff,
            idempotency_key,
        )

    @router.post("/quotes/{quote_id}/reject", responses=staff_refusals(400, 403, 404, 409))
    async def reject(
        quote_id: str,
        body: RejectBody,
        staff: StaffDep,
        request: Request,
        idempotency_key: IdempotencyKey = None,
    ) -> JSONResponse:
        approver = _approver(staff, body.role)
        return await _send(
            request.app.state.client,
            quote_id,
            RejectRequest(approver=approver, reason=body.reason),
            staff,
            idempotency_key,
        )

    @router.post("/quotes/{quote_id}/resolve", responses=staff_refusals(400, 403, 404, 409))
    async def resolve(
        quote_id: str,
        body: ResolveBody,
        staff: StaffDep,
        request: Request,
        idempotency_key: IdempotencyKey = None,
    ) -> JSONResponse:
        require_role(staff, StaffRole.OPERATOR)
        return await _send(
            request.app.state.client,
            quote_id,
            domain_request(
                lambda: ResolveRequest(action=body.action, operator=staff.name, note=body.note)
            ),
            staff,
            idempotency_key,
        )

    @router.post("/invoices/{invoice_id}/resolve", responses=staff_refusals(400, 403, 404, 409))
    async def resolve_invoice_step(
        invoice_id: str,
        body: ResolveBody,
        staff: StaffDep,
        request: Request,
        idempotency_key: IdempotencyKey = None,
        workflow_id: AdjustmentId = None,
    ) -> JSONResponse:
        require_role(staff, StaffRole.OPERATOR)
        client = request.app.state.client
        decision = domain_request(
            lambda: ResolveRequest(action=body.action, operator=staff.name, note=body.note)
        )
        sending = resolve_invoice(
            client,
            invoice_id,
            decision,
            idempotency_key=idempotency_key,
            workflow_id=workflow_id,
        )
        workflow_id = invoice_workflow_id(invoice_id)
        return await _answer(client, sending, ("invoice", invoice_id), workflow_id, staff)

    return router
