"""What finance ops filter on in the Web UI: custom search attributes and the summary.

Register the attributes on a server with ``revsync dev`` (automatic) or, in production::

    temporal operator search-attribute create --name QuoteId --type Keyword  # etc.

``OrderAmount`` is a Double because that is the only numeric type visibility offers: it is
for filtering and sorting, never for arithmetic; the exact amount lives in the payloads.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from temporalio.common import (
    SearchAttributeKey,
    SearchAttributePair,
    TypedSearchAttributes,
)

from domain.quote import Quote
from domain.stages import OrderStage

QUOTE_ID = SearchAttributeKey.for_keyword("QuoteId")
CUSTOMER_ID = SearchAttributeKey.for_keyword("CustomerId")
ORDER_STAGE = SearchAttributeKey.for_keyword("OrderStage")
BLOCKED_STEP = SearchAttributeKey.for_keyword("BlockedStep")
ORDER_AMOUNT = SearchAttributeKey.for_float("OrderAmount")
CURRENCY = SearchAttributeKey.for_keyword("Currency")
# Set once a business SLA (booking, approval) is breached: filter and alert on it.
SLA_BREACHED = SearchAttributeKey.for_bool("SlaBreached")
# When the saga entered its current stage: `revsync stuck` finds long waits with it.
STAGE_SINCE = SearchAttributeKey.for_datetime("StageSince")
# Customer master (workflow type CustomerMaster; CustomerId is the golden id, BlockedStep a
# parked propagation such as propagate_erp): ACTIVE, NEEDS_REVIEW or MERGED.
MASTER_STATE = SearchAttributeKey.for_keyword("MasterState")
# Duplicate detection finds candidates by these: SHA-256 of the normalised tax id (no raw
# tax id in visibility) and the record's non-free-mail domains.
MASTER_TAX_ID_HASH = SearchAttributeKey.for_keyword("MasterTaxIdHash")
MASTER_DOMAINS = SearchAttributeKey.for_keyword_list("MasterDomains")
# Invoice-to-revenue (workflow type InvoiceToRevenue, id i2r-<invoice id>; CustomerId is the
# CRM account, Currency and BlockedStep as for quotes): the billing invoice id, its stage
# (domain.invoice_contracts.InvoiceStage) and what is still owed (for filtering only). The
# adjustments of ended invoice sagas (workflow type InvoiceAdjustment) carry them too, with
# stages of their own (domain.invoice_adjustment.AdjustmentStage).
INVOICE_ID = SearchAttributeKey.for_keyword("InvoiceId")
INVOICE_STAGE = SearchAttributeKey.for_keyword("InvoiceStage")
INVOICE_AMOUNT_DUE = SearchAttributeKey.for_float("InvoiceAmountDue")

ALL_KEYS: tuple[SearchAttributeKey[Any], ...] = (
    QUOTE_ID,
    CUSTOMER_ID,
    ORDER_STAGE,
    BLOCKED_STEP,
    ORDER_AMOUNT,
    CURRENCY,
    SLA_BREACHED,
    STAGE_SINCE,
    MASTER_STATE,
    MASTER_TAX_ID_HASH,
    MASTER_DOMAINS,
    INVOICE_ID,
    INVOICE_STAGE,
    INVOICE_AMOUNT_DUE,
)


def start_attributes(quote: Quote, now: datetime) -> TypedSearchAttributes:
    """The attributes a saga is started with, so it is findable before its first task."""
    pairs: list[SearchAttributePair[Any]] = [
        SearchAttributePair(QUOTE_ID, quote.quote_id),
        SearchAttributePair(CUSTOMER_ID, quote.account_id),
        SearchAttributePair(ORDER_STAGE, OrderStage.RECEIVED.value),
        SearchAttributePair(STAGE_SINCE, now),
        SearchAttributePair(ORDER_AMOUNT, float(quote.total)),
        SearchAttributePair(CURRENCY, quote.currency),
    ]
    return TypedSearchAttributes(pairs)


# Characters that start Markdown formatting (emphasis, code, links, HTML, tables,
# strikethrough, entities, headings) when they appear in text the Web UI renders.
_MARKDOWN_SPECIAL = frozenset("\\`*_[]<>|~#&")


def md(value: object) -> str:
    """``value`` as literal text inside the Markdown the Web UI renders (summaries, details).

    Vendor text is full of Markdown: ``SBQQ__Quote__c`` would render as SBQQ**Quote**c, and a
    message with ``<`` or ``|`` could swallow what follows. Every such character is
    backslash-escaped and line breaks become spaces, so a value never starts a block of its
    own (a list, a heading, a quote)."""
    text = " ".join(str(value).splitlines())
    return "".join("\\" + c if c in _MARKDOWN_SPECIAL else c for c in text)


def static_summary(quote: Quote) -> str:
    """One line the Web UI shows in the workflow list."""
    return f"Quote {md(quote.quote_id)} · {quote.total_money()} · account {md(quote.account_id)}"


def static_details(quote: Quote) -> str:
    """The quote as the Web UI shows it on the order's page. The lines are a list, not a
    table: the Web UI's Markdown does not render tables."""
    header = [
        f"**Quote** {md(quote.quote_id)} (owner {md(quote.owner)}), "
        f"accepted {quote.accepted_at:%Y-%m-%d}",
        f"**Account** {md(quote.account_id)}",
        f"**Total** {quote.total_money()}, {quote.payment_terms.value}, "
        f"{quote.term_months} months from {quote.start_date}",
        f"**Lines** ({len(quote.lines)})",
    ]
    items = [
        f"- {md(line.line_id)}: {md(line.sku)}, {line.quantity} at {line.unit_price}"
        + (f", {line.discount_percent}% off" if line.discount_percent else "")
        + f" = {line.net_amount(quote.currency)}"
        for line in quote.lines
    ]
    return "\n\n".join(header) + "\n\n" + "\n".join(items)


def workflow_id_for_quote(quote_id: str) -> str:
    return f"q2c-{quote_id}"
