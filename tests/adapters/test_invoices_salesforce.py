"""Invoice-to-revenue, CRM side: the Account's receivable status written by the Salesforce
adapter against the Salesforce emulator."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import httpx
import pytest

from adapters.crm.salesforce import SalesforceCrm, salesforce_datetime
from adapters.errors import NotFoundError, RejectedError, TransientError, UnknownOutcomeError
from adapters.ports import CrmPort
from domain.receivable import ReceivableStatus
from sandbox.app import DEFAULT_TOKENS, SandboxState, create_app
from tests.adapters.lossy import LossyTransport

BASE_URL = "http://sandbox/salesforce"
API = f"{BASE_URL}/services/data/v61.0"
TOKEN = DEFAULT_TOKENS["salesforce"]
AUTH = {"Authorization": f"Bearer {TOKEN}"}
ACCOUNT = "0015e00000NordDE1"
ISSUED = datetime(2026, 1, 15, 9, 30, tzinfo=UTC)
AR_FIELDS = (
    "Revsync_AR_Status__c",
    "Revsync_AR_Invoice__c",
    "Revsync_AR_Amount_Due__c",
    "Revsync_AR_Currency__c",
    "Revsync_AR_As_Of__c",
)


@pytest.fixture
def crm(http: httpx.AsyncClient) -> SalesforceCrm:
    adapter = SalesforceCrm(http, base_url=BASE_URL, api_version="v61.0", access_token=TOKEN)
    port: CrmPort = adapter  # mypy checks the adapter implements the port
    assert port.vendor == "salesforce"
    return adapter


def shown(state: SandboxState, account_id: str = ACCOUNT) -> dict[str, Any]:
    (account,) = [a for a in state.salesforce.snapshot()["accounts"] if a["Id"] == account_id]
    return {field: account.get(field) for field in AR_FIELDS}


async def inject(http: httpx.AsyncClient, **rule: Any) -> None:
    response = await http.post(
        "/_sandbox/faults", json={"faults": [{"vendor": "salesforce", **rule}]}
    )
    assert response.status_code == 200, response.text


async def set_status(
    crm: SalesforceCrm,
    status: ReceivableStatus,
    as_of: datetime,
    amount_due: str = "3636.64",
    invoice_id: str = "in_1Nord",
) -> None:
    await crm.set_receivable_status(
        ACCOUNT, status, invoice_id, Decimal(amount_due), "EUR", as_of=as_of
    )


async def test_the_status_lands_on_the_account(crm: SalesforceCrm, state: SandboxState) -> None:
    await set_status(crm, ReceivableStatus.CURRENT, ISSUED)

    assert shown(state) == {
        "Revsync_AR_Status__c": "Current",
        "Revsync_AR_Invoice__c": "in_1Nord",
        "Revsync_AR_Amount_Due__c": Decimal("3636.64"),
        "Revsync_AR_Currency__c": "EUR",
        "Revsync_AR_As_Of__c": "2026-01-15T09:30:00.000+0000",
    }
    # Other account fields are untouched.
    account = next(a for a in state.salesforce.snapshot()["accounts"] if a["Id"] == ACCOUNT)
    assert account["Name"] == "Nordlicht Logistik"


async def test_writing_the_same_status_twice_is_harmless(
    crm: SalesforceCrm, state: SandboxState
) -> None:
    await set_status(crm, ReceivableStatus.OVERDUE, ISSUED + timedelta(days=37))
    first = shown(state)
    await set_status(crm, ReceivableStatus.OVERDUE, ISSUED + timedelta(days=37))
    assert shown(state) == first
    assert first["Revsync_AR_Status__c"] == "Overdue"


async def test_a_newer_status_replaces_an_older_one(
    crm: SalesforceCrm, state: SandboxState
) -> None:
    await set_status(crm, ReceivableStatus.OVERDUE, ISSUED + timedelta(days=37))
    await set_status(crm, ReceivableStatus.PAID, ISSUED + timedelta(days=40), amount_due="0.00")
    assert shown(state)["Revsync_AR_Status__c"] == "Paid"
    assert shown(state)["Revsync_AR_Amount_Due__c"] == Decimal("0.00")


async def test_an_older_status_arriving_late_changes_nothing(
    crm: SalesforceCrm, state: SandboxState
) -> None:
    await set_status(crm, ReceivableStatus.PAID, ISSUED + timedelta(days=20), amount_due="0.00")
    newest = shown(state)

    # The "overdue" write of an earlier step, retried after the payment was shown.
    await set_status(crm, ReceivableStatus.OVERDUE, ISSUED + timedelta(days=10))

    assert shown(state) == newest


async def test_the_org_refuses_moving_the_as_of_back(http: httpx.AsyncClient) -> None:
    url = f"{API}/sobjects/Account/{ACCOUNT}"
    newer = await http.patch(
        url, json={"Revsync_AR_As_Of__c": "2026-02-01T00:00:00Z"}, headers=AUTH
    )
    assert newer.status_code == 204
    older = await http.patch(
        url, json={"Revsync_AR_As_Of__c": "2026-02-01T00:30:00+01:00"}, headers=AUTH
    )
    assert older.status_code == 400
    (error,) = older.json()
    assert error["errorCode"] == "FIELD_CUSTOM_VALIDATION_EXCEPTION"
    assert error["fields"] == ["Revsync_AR_As_Of__c"]
    assert error["message"].startswith("Revsync_AR_Monotonic")
    same = await http.patch(
        url, json={"Revsync_AR_As_Of__c": "2026-02-01T01:00:00+01:00"}, headers=AUTH
    )
    assert same.status_code == 204  # the same instant is not older


async def test_another_validation_failure_is_still_a_rejection(
    crm: SalesforceCrm, http: httpx.AsyncClient, state: SandboxState
) -> None:
    await inject(http, operation="update", status=400, code="FIELD_CUSTOM_VALIDATION_EXCEPTION")
    with pytest.raises(RejectedError) as caught:
        await set_status(crm, ReceivableStatus.CURRENT, ISSUED)
    assert caught.value.code == "FIELD_CUSTOM_VALIDATION_EXCEPTION"
    assert shown(state)["Revsync_AR_Status__c"] is None


async def test_the_as_of_is_compared_as_an_instant(crm: SalesforceCrm, state: SandboxState) -> None:
    berlin = timezone(timedelta(hours=1))
    await set_status(crm, ReceivableStatus.CURRENT, datetime(2026, 1, 15, 10, 30, tzinfo=berlin))
    assert shown(state)["Revsync_AR_As_Of__c"] == "2026-01-15T09:30:00.000+0000"
    assert salesforce_datetime(datetime(2026, 1, 15, 9, 30, 0, 123456, tzinfo=UTC)) == (
        "2026-01-15T09:30:00.123+0000"
    )


async def test_a_naive_as_of_is_rejected_before_sending(
    crm: SalesforceCrm, http: httpx.AsyncClient
) -> None:
    sent: list[httpx.Request] = []

    async def record(request: httpx.Request) -> None:
        sent.append(request)

    http.event_hooks["request"].append(record)
    with pytest.raises(RejectedError) as caught:
        await set_status(crm, ReceivableStatus.CURRENT, datetime(2026, 1, 15, 9, 30))
    assert caught.value.code == "INVALID_AS_OF"
    assert sent == []


async def test_the_emulator_refuses_unknown_fields_and_values(http: httpx.AsyncClient) -> None:
    url = f"{API}/sobjects/Account/{ACCOUNT}"
    unknown = await http.patch(url, json={"Revsync_AR_Days_Late__c": 3}, headers=AUTH)
    assert unknown.status_code == 400
    assert unknown.json()[0]["errorCode"] == "INVALID_FIELD"
    bad_status = await http.patch(url, json={"Revsync_AR_Status__c": "Late"}, headers=AUTH)
    assert bad_status.json()[0]["errorCode"] == "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST"
    no_zone = await http.patch(
        url, json={"Revsync_AR_As_Of__c": "2026-01-15T09:30:00"}, headers=AUTH
    )
    assert no_zone.json()[0]["errorCode"] == "JSON_PARSER_ERROR"


async def test_an_unknown_account_is_not_found(crm: SalesforceCrm) -> None:
    with pytest.raises(NotFoundError) as caught:
        await crm.set_receivable_status(
            "001000000000000AAA",
            ReceivableStatus.CURRENT,
            "in_1",
            Decimal("1.00"),
            "EUR",
            as_of=ISSUED,
        )
    assert caught.value.code == "NOT_FOUND"
    with pytest.raises(NotFoundError):
        await crm.set_receivable_status(
            "001'; DROP", ReceivableStatus.CURRENT, "in_1", Decimal(1), "EUR", as_of=ISSUED
        )


@pytest.mark.parametrize(
    ("status", "code", "extra"),
    [
        (403, "REQUEST_LIMIT_EXCEEDED", {}),
        (400, "UNABLE_TO_LOCK_ROW", {}),
        (503, None, {"retry_after": 5}),
    ],
)
async def test_throttling_and_outages_are_transient(
    crm: SalesforceCrm,
    http: httpx.AsyncClient,
    state: SandboxState,
    status: int,
    code: str | None,
    extra: dict[str, Any],
) -> None:
    await inject(http, operation="update", status=status, code=code, **extra)
    with pytest.raises(TransientError) as caught:
        await set_status(crm, ReceivableStatus.CURRENT, ISSUED)
    assert caught.value.status == status
    assert shown(state)["Revsync_AR_Status__c"] is None
    await set_status(crm, ReceivableStatus.CURRENT, ISSUED)
    assert shown(state)["Revsync_AR_Status__c"] == "Current"


@pytest.fixture
async def lossy(state: SandboxState) -> AsyncIterator[tuple[SalesforceCrm, LossyTransport]]:
    transport = LossyTransport(httpx.ASGITransport(app=create_app(state)))
    async with httpx.AsyncClient(transport=transport, base_url="http://sandbox") as client:
        crm = SalesforceCrm(client, base_url=BASE_URL, api_version="v61.0", access_token=TOKEN)
        yield crm, transport


async def test_a_lost_answer_is_an_unknown_outcome_and_the_retry_settles_it(
    lossy: tuple[SalesforceCrm, LossyTransport], state: SandboxState
) -> None:
    crm, transport = lossy
    transport.lose("PATCH", f"/sobjects/Account/{ACCOUNT}")

    with pytest.raises(UnknownOutcomeError):
        await set_status(crm, ReceivableStatus.PAID, ISSUED, amount_due="0.00")
    applied = shown(state)
    assert applied["Revsync_AR_Status__c"] == "Paid"  # it went through

    await set_status(crm, ReceivableStatus.PAID, ISSUED, amount_due="0.00")
    assert shown(state) == applied


async def test_a_fault_after_applying_then_the_retry(
    crm: SalesforceCrm, http: httpx.AsyncClient, state: SandboxState
) -> None:
    await inject(http, operation="update", status=500, phase="after")
    with pytest.raises(TransientError):
        await set_status(crm, ReceivableStatus.VOID, ISSUED, amount_due="0.00")
    assert shown(state)["Revsync_AR_Status__c"] == "Void"
    await set_status(crm, ReceivableStatus.VOID, ISSUED, amount_due="0.00")
    assert shown(state)["Revsync_AR_Status__c"] == "Void"
