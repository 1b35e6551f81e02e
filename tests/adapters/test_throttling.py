"""Throttling is flow control, not failure: each vendor's throttle signal, read once by its
adapter (``TransientError.throttle``), paces the retry and never opens the circuit breaker;
a spent daily quota (Salesforce's ``REQUEST_LIMIT_EXCEEDED`` TotalRequests, HubSpot's
``DAILY``) backs off for minutes, not seconds. Adapters run against their emulators."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

import httpx
import pytest

from activities.classify import quota_backoff, to_application_error
from adapters.billing.zuora import ZuoraBilling
from adapters.breaker import CIRCUIT_OPEN
from adapters.crm.salesforce import SalesforceCrm, Subrequest
from adapters.errors import Throttle, TransientError
from adapters.oauth import StaticToken
from adapters.registry import BILLING_VENDORS, CRM_VENDORS, ERP_VENDORS
from domain.saga import FailureType
from revsync.settings import Settings
from sandbox import hubspot
from sandbox.app import DEFAULT_TOKENS, SandboxState
from sandbox.faults import FaultRule, FaultsRequest

ACME = "0015e00000AcmeUS1"
API = "/services/data/v61.0"


@pytest.fixture
def settings() -> Settings:
    return Settings(sandbox_host="sandbox", sandbox_port=80)


@pytest.fixture
def crm(http: httpx.AsyncClient) -> SalesforceCrm:
    return SalesforceCrm(
        http,
        base_url="http://sandbox/salesforce",
        api_version="v61.0",
        access_token=DEFAULT_TOKENS["salesforce"],
    )


def inject(state: SandboxState, vendor: str, **rule: Any) -> None:
    state.faults.configure(FaultsRequest(faults=[FaultRule(vendor=vendor, **rule)]))


async def spend_allocation(http: httpx.AsyncClient, maximum: int, used: int) -> None:
    answer = await http.post(
        "/_sandbox/salesforce/api-allocation", json={"max": maximum, "used": used}
    )
    assert answer.status_code == 200, answer.text


# -- Salesforce: the org's rolling 24-hour API request allocation ----------------------------


async def test_a_spent_salesforce_allocation_is_a_quota_throttle_on_every_call_until_it_recovers(
    crm: SalesforceCrm, http: httpx.AsyncClient
) -> None:
    await spend_allocation(http, maximum=1000, used=1000)
    # More refusals than any breaker threshold, on reads and on composite writes alike: each
    # reaches Salesforce (never CIRCUIT_OPEN) and reads as the daily quota, no Retry-After.
    for _ in range(4):
        for call in (
            lambda: crm.get_account(ACME),
            lambda: crm.set_quote_status("a0x5e00000Quote001", "Rejected", "no"),
            lambda: crm.composite(
                "probe",
                [Subrequest("GET", f"{API}/sobjects/Account/{ACME}", "a")],
                all_or_none=False,
            ),
        ):
            with pytest.raises(TransientError) as caught:
                await call()
            refused = caught.value
            assert (refused.status, refused.code) == (403, "REQUEST_LIMIT_EXCEEDED")
            assert refused.retry_after is None
            assert refused.throttle == Throttle.quota("Salesforce daily API request limit")
    # The usage ages out (the operator, or 24 hours): the same call goes through.
    await spend_allocation(http, maximum=1000, used=999)
    assert (await crm.get_account(ACME)).name == "Acme Robotics"


async def test_salesforces_concurrent_request_limit_is_a_rate_throttle(
    crm: SalesforceCrm, state: SandboxState
) -> None:
    inject(
        state,
        "salesforce",
        operation="query",
        status=403,
        code="REQUEST_LIMIT_EXCEEDED",
        message="ConcurrentPerOrgLongTxn Limit exceeded.",
    )
    with pytest.raises(TransientError) as caught:
        await crm.get_account(ACME)
    assert caught.value.throttle is not None and caught.value.throttle.kind == "rate"
    converted = to_application_error(caught.value, attempt=3)
    assert converted.next_retry_delay is None  # the usual backoff: it clears in seconds


def quota_error(retry_after: float | None = None) -> TransientError:
    return TransientError(
        "salesforce",
        "get_account",
        "TotalRequests Limit exceeded.",
        status=403,
        code="REQUEST_LIMIT_EXCEEDED",
        retry_after=retry_after,
        throttle=Throttle.quota("Salesforce daily API request limit"),
    )


def test_a_spent_quota_backs_off_for_minutes_growing_and_says_so() -> None:
    delays = [to_application_error(quota_error(), attempt=n).next_retry_delay for n in range(1, 8)]
    assert delays == [timedelta(minutes=m) for m in (5, 10, 20, 40, 40, 40, 40)]
    assert quota_backoff(10_000) == timedelta(minutes=40)

    first = to_application_error(quota_error(), attempt=1)
    assert first.type == FailureType.VENDOR_TRANSIENT and not first.non_retryable
    assert first.message.startswith(
        "Salesforce daily API request limit exhausted; next attempt in 5 minutes"
    )
    assert "REQUEST_LIMIT_EXCEEDED" in first.message  # what Salesforce said stays readable
    assert first.details[0]["throttle"] == "quota"
    assert first.details[0]["limit"] == "Salesforce daily API request limit"

    # A vendor that names its reset (HubSpot: midnight in the account's zone) waits for it.
    later = to_application_error(quota_error(retry_after=3 * 3600), attempt=1)
    assert later.next_retry_delay == timedelta(hours=3)
    assert "next attempt in 180 minutes" in later.message


def test_a_rate_throttle_keeps_the_vendors_own_pace() -> None:
    error = TransientError(
        "dynamics",
        "create_sales_order",
        "throttled",
        status=429,
        code="0x80072322",
        retry_after=5,
        throttle=Throttle.rate("Dataverse service protection limit"),
    )
    converted = to_application_error(error, attempt=6)
    assert converted.next_retry_delay == timedelta(seconds=5)
    assert converted.message == error.describe()
    assert converted.details[0]["throttle"] == "rate"


# -- Salesforce composite: the subrequests' answers inside a 200 ------------------------------


async def probe_composite(crm: SalesforceCrm) -> TransientError:
    with pytest.raises(TransientError) as caught:
        await crm.composite(
            "probe", [Subrequest("GET", f"{API}/sobjects/Account/{ACME}", "a")], all_or_none=False
        )
    return caught.value


async def test_composite_subrequest_failures_count_and_its_throttles_do_not(
    crm: SalesforceCrm, state: SandboxState
) -> None:
    # The composite answers 200 whatever its subrequests did: what they report is read inside
    # the breaker's guard. 4 subrequests the org could not serve, 3 throttled, then 1 more
    # failure: 5 failures in a row open the circuit (the throttled ones neither counted nor
    # reset the run).
    for status, code, times in (
        (503, "SERVER_UNAVAILABLE", 4),
        (403, "REQUEST_LIMIT_EXCEEDED", 3),
        (503, "SERVER_UNAVAILABLE", 1),
    ):
        inject(state, "salesforce", operation="get", status=status, code=code, times=times)
        for _ in range(times):
            failed = await probe_composite(crm)
            assert failed.code == code
            assert (failed.throttle is not None) is (code == "REQUEST_LIMIT_EXCEEDED")
    assert (await probe_composite(crm)).code == CIRCUIT_OPEN


# -- Zuora: failures reported inside an HTTP 200 ----------------------------------------------


def zuora_answering(reasons: Callable[[], list[dict[str, Any]]]) -> tuple[ZuoraBilling, list[int]]:
    """A Zuora adapter whose every Object Query answers HTTP 200 with ``success: false`` and
    the given reasons; the list counts the requests that reached it."""
    reached: list[int] = []

    def answer(request: httpx.Request) -> httpx.Response:
        reached.append(1)
        return httpx.Response(200, json={"success": False, "reasons": reasons()})

    client = httpx.AsyncClient(transport=httpx.MockTransport(answer))
    billing = ZuoraBilling(client, base_url="https://rest.zuora.test", tokens=StaticToken("t"))
    return billing, reached


async def test_zuora_failures_in_a_200_count_and_its_request_limit_does_not() -> None:
    script = ["50000060"] * 4 + ["50000070"] * 3 + ["50000060"]
    billing, reached = zuora_answering(lambda: [{"code": int(script.pop(0)), "message": "m"}])
    for expected in ["50000060"] * 4 + ["50000070"] * 3 + ["50000060"]:
        with pytest.raises(TransientError) as caught:
            await billing.find_customer("001")
        assert caught.value.code == expected
        assert (caught.value.throttle is not None) is (expected == "50000070")
    with pytest.raises(TransientError) as fast:
        await billing.find_customer("001")
    assert fast.value.code == CIRCUIT_OPEN
    assert len(reached) == 8  # the open circuit sent nothing


async def test_zuora_crud_request_limits_in_a_200_are_throttling() -> None:
    billing, reached = zuora_answering(
        lambda: [{"code": "REQUEST_EXCEEDED_LIMIT", "message": "concurrent requests"}]
    )
    for _ in range(10):
        with pytest.raises(TransientError) as caught:
            await billing.find_customer("001")
        assert caught.value.code == "REQUEST_EXCEEDED_LIMIT"
        assert caught.value.throttle == Throttle.rate("Zuora request limit")
    assert len(reached) == 10


# -- every emulator's own throttling knob -----------------------------------------------------


def _zuora_limit(state: SandboxState) -> None:
    state.zuora.requests_per_minute = 0


def _dynamics_limit(state: SandboxState) -> None:
    state.dynamics.request_limit = 0


def _sap_limit(state: SandboxState) -> None:
    state.sap.throttle = 1_000


def _hubspot_burst(state: SandboxState) -> None:
    state.hubspot.ten_secondly_limit = 0


def _hubspot_daily(state: SandboxState) -> None:
    state.hubspot.daily_remaining = 0


def _salesforce_allocation(state: SandboxState) -> None:
    state.salesforce.api_allocation.set(10, used=10)


def _reader(
    settings: Settings, http: httpx.AsyncClient, port: str, vendor: str
) -> Callable[[], Awaitable[Any]]:
    """One read of the port, on one adapter (one breaker) built once."""
    if port == "crm":
        crm = CRM_VENDORS[vendor](settings, http)
        account = hubspot.COMPANY_IDS[ACME] if vendor == "hubspot" else ACME
        return lambda: crm.get_account(account)
    if port == "billing":
        billing = BILLING_VENDORS[vendor](settings, http)
        return lambda: billing.find_customer(ACME)
    erp = ERP_VENDORS[vendor](settings, http)
    return lambda: erp.find_customer(f"acct-{ACME}")


@pytest.mark.parametrize(
    ("vendor", "port", "limit", "status", "code", "kind"),
    [
        ("salesforce", "crm", _salesforce_allocation, 403, "REQUEST_LIMIT_EXCEEDED", "quota"),
        ("hubspot", "crm", _hubspot_burst, 429, "TEN_SECONDLY_ROLLING", "rate"),
        ("hubspot", "crm", _hubspot_daily, 429, "DAILY", "quota"),
        ("zuora", "billing", _zuora_limit, 429, "50000070", "rate"),
        ("dynamics", "erp", _dynamics_limit, 429, "0x80072322", "rate"),
        ("sap", "erp", _sap_limit, 429, "/IWFND/CM_BEC/076", "rate"),
    ],
    ids=[
        "salesforce-allocation",
        "hubspot-ten-secondly",
        "hubspot-daily",
        "zuora",
        "dynamics",
        "sap",
    ],
)
async def test_an_emulators_throttling_is_read_once_and_never_opens_the_breaker(
    http: httpx.AsyncClient,
    state: SandboxState,
    settings: Settings,
    vendor: str,
    port: str,
    limit: Callable[[SandboxState], None],
    status: int,
    code: str | None,
    kind: str,
) -> None:
    read = _reader(settings, http, port, vendor)
    await read()  # tokens fetched, the vendor reachable
    limit(state)
    for _ in range(8):
        with pytest.raises(TransientError) as caught:
            await read()
        assert caught.value.code != CIRCUIT_OPEN
        assert (caught.value.status, caught.value.code) == (status, code)
        assert caught.value.throttle is not None and caught.value.throttle.kind == kind
