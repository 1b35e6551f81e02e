"""Reading Salesforce CPQ quotes with their lines: what a quote-accepted Outbound Message
makes the gateway read before it starts quote-to-cash (outside the CRM port: only the
Salesforce trigger needs it).

One composite call holds two SOQL queries, the quotes and their lines, for every quote of
a delivery (an Outbound Message carries up to 100 notifications): two reads in one call,
whatever the number of quotes. A query with more rows than a page is followed through
``nextRecordsUrl``. Failures are the adapter's taxonomy (:mod:`adapters.errors`): a
transient one means "ask Salesforce to deliver again".
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx

from adapters.crm.salesforce import SalesforceCrm, check_record_id, soql_literal
from adapters.vendor_auth import salesforce_tokens
from adapters.webhooks.salesforce_cpq import LINE_FIELDS, LINE_SOBJECT, QUOTE_FIELDS, QUOTE_SOBJECT
from revsync.settings import Settings

OPERATION = "read_cpq_quotes"
# An Outbound Message holds at most 100 notifications; one IN list takes them all.
MAX_QUOTES = 100


@dataclass(frozen=True)
class CpqQuoteRecords:
    """A quote record and its line records, as SOQL answered them."""

    quote: dict[str, Any]
    lines: list[dict[str, Any]] = field(default_factory=list)


class CpqQuoteReader:
    """Reads CPQ quotes and their lines through a :class:`SalesforceCrm`'s client."""

    def __init__(self, crm: SalesforceCrm) -> None:
        self._crm = crm

    async def read(self, quote_ids: Sequence[str]) -> dict[str, CpqQuoteRecords]:
        """The quotes among ``quote_ids`` that exist, by id, each with its lines. Raises
        :class:`~adapters.errors.VendorError`."""
        ids = list(dict.fromkeys(quote_ids))
        if not ids:
            return {}
        if len(ids) > MAX_QUOTES:
            raise ValueError(f"at most {MAX_QUOTES} quotes a read")
        for quote_id in ids:
            check_record_id(OPERATION, QUOTE_SOBJECT, quote_id)
        listed = ", ".join(soql_literal(quote_id) for quote_id in ids)
        found = await self._crm.query_many(
            OPERATION,
            {
                "quotes": f"SELECT {', '.join(QUOTE_FIELDS)} FROM {QUOTE_SOBJECT}"
                f" WHERE Id IN ({listed})",
                "lines": f"SELECT {', '.join(LINE_FIELDS)} FROM {LINE_SOBJECT}"
                f" WHERE SBQQ__Quote__c IN ({listed}) ORDER BY SBQQ__Number__c",
            },
        )
        quotes = {
            str(record["Id"]): CpqQuoteRecords(quote=record)
            for record in found["quotes"]
            if isinstance(record.get("Id"), str)
        }
        for line in found["lines"]:
            owner = quotes.get(str(line.get("SBQQ__Quote__c")))
            if owner is not None:
                owner.lines.append(line)
        return quotes


def cpq_reader(settings: Settings, http: httpx.AsyncClient) -> CpqQuoteReader:
    """The reader on the Salesforce org the settings name (base URL, API version and the
    auth mode of ``REVSYNC_SALESFORCE_AUTH``, as the CRM worker's adapter). Raises
    :class:`~revsync.settings.MissingSetting` for a credential the mode lacks."""
    crm = SalesforceCrm(
        http,
        base_url=settings.salesforce_base_url,
        api_version=settings.salesforce_api_version,
        tokens=salesforce_tokens(settings, http),
    )
    return CpqQuoteReader(crm)
