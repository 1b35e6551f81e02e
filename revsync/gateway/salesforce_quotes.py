"""The gateway's side of the Salesforce CPQ trigger: the ``SBQQ__Quote__c`` notifications of
an Outbound Message become quote-to-cash starts.

For one delivery (1 to 100 notifications, at least once, in any order):

1. the notifications that ask for a booking (:func:`accepted_quote_id`: a status or
   primary flag in the message saying otherwise is acknowledged and ignored) name the
   quotes, each once however often it appears;
2. the quotes and their lines are read in one composite call (:mod:`adapters.crm.salesforce_cpq`);
   a quote that no longer exists, or is no longer an accepted primary quote when read, is
   acknowledged and ignored (a late notification);
3. each is mapped (:mod:`adapters.webhooks.salesforce_cpq`) and started through
   ``revsync.gateway.webhooks.start_quote_to_cash``, whose workflow id ``q2c-<quote id>``
   makes a redelivery or a duplicate start nothing new.

The delivery is acknowledged (``<Ack>true</Ack>``) only once every quote in it is handled.
Otherwise the answer makes Salesforce deliver the whole message again, later:

- the read failed (Salesforce away, throttled, a lost answer; or a refusal such as a field
  missing from the org, which an admin fixes): 503 with ``Retry-After``;
- Temporal unreachable: 503 from the start (quotes started before it are duplicates on the
  next delivery).

A quote that cannot be mapped (a Usage line, a Quarterly billing frequency, no currency)
is a poison notification: delivering it again cannot change the answer, and Salesforce
would retry it for 24 hours, holding back nothing but filling its queue. revsync refuses
it: it is logged with the quote id and the fields at fault (never their values), counted
as ``refused`` in ``revsync_webhook_deliveries``, and acknowledged with the rest of the
delivery. Correcting the quote and accepting it again sends a new notification.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence

import httpx
import structlog
from fastapi.responses import JSONResponse, Response
from temporalio.common import MetricMeter

from adapters.crm.salesforce_cpq import CpqQuoteReader, cpq_reader
from adapters.errors import TransientError, UnknownOutcomeError, VendorError
from adapters.webhooks.salesforce import Notification
from adapters.webhooks.salesforce_cpq import (
    QUOTE_SOBJECT,
    CpqMappingError,
    accepted_quote_id,
    is_bookable,
    quote_from_cpq,
)
from domain.quote import Quote
from revsync import metrics
from revsync.settings import Settings

log = structlog.get_logger("revsync.gateway.salesforce_quotes")

SOURCE = "salesforce"
RETRY_AFTER_SECONDS = 30
# Starts in flight at once for one delivery (up to 100 quotes).
CONCURRENT_STARTS = 10


def quote_reader(settings: Settings, http: httpx.AsyncClient) -> CpqQuoteReader | None:
    """The gateway's CPQ quote reader on its vendor client ``http``: None when no Salesforce
    org may send Outbound Messages (``REVSYNC_SALESFORCE_ORG_IDS`` empty). Raises
    :class:`~revsync.settings.MissingSetting` for a credential the Salesforce auth mode
    lacks, so the gateway refuses to start rather than failing each delivery."""
    if not settings.salesforce_org_ids:
        return None
    return cpq_reader(settings, http)


def _count(meter: MetricMeter, outcome: str) -> None:
    metrics.count(meter, metrics.WEBHOOK_DELIVERIES, source=SOURCE, outcome=outcome)


def _retry_later(reason: str) -> JSONResponse:
    return JSONResponse(
        {"error": reason}, status_code=503, headers={"Retry-After": str(RETRY_AFTER_SECONDS)}
    )


async def book_accepted_quotes(
    reader: CpqQuoteReader | None,
    notifications: Sequence[Notification],
    start: Callable[[Quote], Awaitable[Response]],
    *,
    meter: MetricMeter = MetricMeter.noop,
) -> Response | int:
    """Handle the quote notifications of one delivery (see the module); ``start`` starts
    quote-to-cash for a quote, answering as ``start_quote_to_cash`` does. Returns how many
    quote notifications were handled (started, duplicate, ignored or refused), or the
    response to send instead of the Ack when the delivery must come again."""
    quote_notes = [note for note in notifications if note.sobject_type == QUOTE_SOBJECT]
    wanted = list(dict.fromkeys(q for q in map(accepted_quote_id, quote_notes) if q))
    ignored = len({note.fields.get("Id") for note in quote_notes}) - len(wanted)
    for _ in range(max(ignored, 0)):
        _count(meter, "acknowledged")
    if ignored:
        log.info("salesforce cpq notifications ignored: not accepted", count=ignored)
    if not wanted:
        return len(quote_notes)
    if reader is None:
        log.error("salesforce cpq quotes cannot be read: no reader configured")
        _count(meter, "unavailable")
        return _retry_later("salesforce cannot be read, retry later")
    try:
        found = await reader.read(wanted)
    except VendorError as error:
        transient = isinstance(error, TransientError | UnknownOutcomeError)
        (log.warning if transient else log.error)(
            "salesforce cpq quotes not read",
            quotes=len(wanted),
            code=error.code,
            status=error.status,
            reason=error.message,
        )
        _count(meter, "unavailable")
        return _retry_later("salesforce could not be read, retry later")

    semaphore = asyncio.Semaphore(CONCURRENT_STARTS)

    async def book(quote_id: str) -> Response | None:
        records = found.get(quote_id)
        if records is None or not is_bookable(records.quote):
            log.info(
                "salesforce cpq quote ignored",
                quote_id=quote_id,
                reason="not found" if records is None else "not an accepted primary quote",
            )
            _count(meter, "acknowledged")
            return None
        try:
            quote = quote_from_cpq(records.quote, records.lines)
        except CpqMappingError as error:
            log.warning(
                "salesforce cpq quote refused",
                quote_id=quote_id,
                fields=[item["field"] for item in error.fields],
                reasons=[item["message"] for item in error.fields],
            )
            _count(meter, "refused")
            return None
        async with semaphore:
            answer = await start(quote)
        return answer if answer.status_code >= 500 else None

    answers = await asyncio.gather(*(book(quote_id) for quote_id in wanted))
    failed = next((answer for answer in answers if answer is not None), None)
    return failed if failed is not None else len(quote_notes)
