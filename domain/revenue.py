"""The revenue schedule of an invoice, and how a void or a credit note changes it.

Pure rules: no I/O and no clock (dates and periods are inputs), so the invoice-to-revenue
workflow can call them directly.

Accounting periods are calendar months written ``YYYY-MM``. A period *closes* on the first
day of the next month; from then on its journal may be posted in the ERP. The saga keeps
one piece of state besides the schedule, ``recognised_through``: the last period whose
entries it has posted (``None`` before the first). Entries in later periods are not yet
recognised and can still change.

Rules:

* A subscription line's amount is spread over its service period by days of service in
  each month (daily proration). The service period is ``service_start`` inclusive to
  ``service_end`` exclusive, as Stripe expresses invoice line periods: January 15 to
  February 15 is 17 days in January and 14 in February.
* A one-off line is recognised whole in the period of its delivery date, or of the
  invoice's issue date when it has none.
* Each period's share is rounded toward zero to the currency's minor unit (USD cents,
  JPY yen, KWD fils) and the last period takes the remainder, so a line's entries sum
  exactly to the line amount, no entry has the opposite sign of its line, and only the last
  entry can exceed its exact share (by less than one minor unit per period). Negative
  (discount) lines are spread the same way: their schedule is the mirror of the positive
  one. A share smaller than one minor unit gives a zero entry; posting a zero journal is
  pointless, and the saga skips those.
* Tax is not revenue and is not scheduled.
* Every entry has an id built from the invoice id, the line id and the period
  (``in_1/L1/2026-03``), the ERP journal's idempotency key. Invoice and line ids cannot
  contain ``/``, so two different (invoice, line, period) never share an id.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from datetime import date
from decimal import Decimal
from typing import Annotated, Self

from pydantic import AfterValidator, BaseModel, ConfigDict, model_validator

from domain.invoice import Invoice, InvoiceStatus, SubscriptionLine
from domain.money import CurrencyCode, from_minor, quantize, to_minor

_PERIOD = re.compile(r"^(\d{4})-(0[1-9]|1[0-2])$")


class RevenueError(ValueError):
    """A schedule operation the rules refuse (the message says why); never worth retrying."""


def check_period(value: str) -> str:
    """``value`` if it is an accounting period ``YYYY-MM``; a precise ValueError otherwise."""
    if not _PERIOD.match(value):
        raise ValueError(f"accounting period {value!r} is not a calendar month YYYY-MM")
    return value


Period = Annotated[str, AfterValidator(check_period)]


def period_of(day: date) -> str:
    """The accounting period ``day`` falls in."""
    return f"{day.year:04d}-{day.month:02d}"


def period_start(period: str) -> date:
    year, month = check_period(period).split("-")
    return date(int(year), int(month), 1)


def closes_on(period: str) -> date:
    """The day ``period`` closes: the first day of the next month, when its revenue journal
    may be posted."""
    start = period_start(period)
    if start.month == 12:
        return date(start.year + 1, 1, 1)
    return date(start.year, start.month + 1, 1)


def next_period(period: str) -> str:
    return period_of(closes_on(period))


class RevenueEntry(BaseModel):
    """Revenue of one line in one period (negative: revenue reversed)."""

    model_config = ConfigDict(frozen=True)

    id: str
    line_id: str
    period: Period
    amount: Decimal


def entry_id(invoice_id: str, line_id: str, period: str) -> str:
    """Id of the schedule entry of ``line_id`` in ``period``: the journal idempotency key."""
    return f"{invoice_id}/{line_id}/{period}"


def void_journal_id(invoice_id: str, line_id: str, period: str) -> str:
    """Id of the journal that reverses a line's recognised revenue when the invoice is
    voided in ``period``."""
    return f"{entry_id(invoice_id, line_id, period)}/void"


def credit_journal_id(invoice_id: str, line_id: str, period: str, credit_note_id: str) -> str:
    """Id of the journal that takes a late credit note's amount back from a line's recognised
    revenue in ``period`` (:func:`take_back`): one per credit note, so that two credit notes
    in one period are two journals."""
    return f"{entry_id(invoice_id, line_id, period)}/credit/{credit_note_id}"


def _by_line(entries: Iterable[RevenueEntry]) -> dict[str, Decimal]:
    totals: dict[str, Decimal] = {}
    for entry in entries:
        totals[entry.line_id] = totals.get(entry.line_id, Decimal(0)) + entry.amount
    return totals


def _sort_key(entry: RevenueEntry) -> tuple[str, str]:
    return (entry.period, entry.line_id)


class RevenueSchedule(BaseModel):
    """When each invoice line's revenue is recognised: one entry per (line, period), sorted
    by period then line id."""

    model_config = ConfigDict(frozen=True)

    invoice_id: str
    currency: CurrencyCode
    entries: tuple[RevenueEntry, ...]

    @model_validator(mode="after")
    def _entries_are_consistent(self) -> Self:
        previous: tuple[str, str] | None = None
        for entry in self.entries:
            key = _sort_key(entry)
            if previous is not None and key <= previous:
                raise ValueError(
                    f"entries must be sorted by period then line, each (line, period) once: "
                    f"{entry.line_id!r} in {entry.period} comes after {previous[1]!r} in "
                    f"{previous[0]}"
                )
            previous = key
            if entry.id != entry_id(self.invoice_id, entry.line_id, entry.period):
                raise ValueError(
                    f"entry id {entry.id!r} should be "
                    f"{entry_id(self.invoice_id, entry.line_id, entry.period)!r}"
                )
            if entry.amount != quantize(entry.amount, self.currency):
                raise ValueError(
                    f"entry {entry.id}: amount {entry.amount} is not in whole "
                    f"{self.currency} minor units"
                )
        return self

    def total_by_line(self) -> dict[str, Decimal]:
        """Revenue each line recognises over the whole schedule."""
        return _by_line(self.entries)

    def recognised_by_line(self, through: str | None) -> dict[str, Decimal]:
        """Revenue each line has recognised once every period up to ``through`` is posted
        (lines with nothing recognised are absent)."""
        if through is None:
            return {}
        check_period(through)
        return _by_line(entry for entry in self.entries if entry.period <= through)

    def periods(self) -> list[str]:
        """The periods that hold entries, in order."""
        return sorted({entry.period for entry in self.entries})

    def entries_for(self, period: str) -> list[RevenueEntry]:
        check_period(period)
        return [entry for entry in self.entries if entry.period == period]


def _spread(total: int, weights: Sequence[int]) -> list[int]:
    """Split ``total`` minor units pro rata to non-negative ``weights`` (not all zero).

    Each share is rounded toward zero, and the last share with a positive weight takes the
    remainder: the shares sum to ``total`` and none has the opposite sign.
    """
    whole = sum(weights)
    last = max(i for i, weight in enumerate(weights) if weight > 0)
    sign = -1 if total < 0 else 1
    shares = [sign * (abs(total) * weight // whole) for weight in weights]
    shares[last] += total - sum(shares)
    return shares


def _days_by_period(start: date, end: date) -> list[tuple[str, int]]:
    """Days of service in each month of ``start`` (inclusive) .. ``end`` (exclusive)."""
    days: list[tuple[str, int]] = []
    cursor = start
    while cursor < end:
        stop = min(closes_on(period_of(cursor)), end)
        days.append((period_of(cursor), (stop - cursor).days))
        cursor = stop
    return days


def build_schedule(invoice: Invoice) -> RevenueSchedule:
    """The revenue schedule of a finalized invoice (see the module docstring for the rules)."""
    if invoice.status is InvoiceStatus.DRAFT:
        raise RevenueError(
            f"invoice {invoice.invoice_id} is a draft: only a finalized invoice is scheduled"
        )
    if invoice.status is InvoiceStatus.VOID:
        raise RevenueError(f"invoice {invoice.invoice_id} is void: it has no revenue")

    def entry(line_id: str, period: str, minor: int) -> RevenueEntry:
        return RevenueEntry(
            id=entry_id(invoice.invoice_id, line_id, period),
            line_id=line_id,
            period=period,
            amount=from_minor(minor, invoice.currency),
        )

    entries: list[RevenueEntry] = []
    for line in invoice.lines:
        minor = to_minor(line.amount, invoice.currency)
        if isinstance(line, SubscriptionLine):
            days = _days_by_period(line.service_start, line.service_end)
            shares = _spread(minor, [count for _, count in days])
            entries += [
                entry(line.line_id, period, share)
                for (period, _), share in zip(days, shares, strict=True)
            ]
        else:
            on = line.delivery_date or invoice.issue_date
            entries.append(entry(line.line_id, period_of(on), minor))
    entries.sort(key=_sort_key)
    return RevenueSchedule(
        invoice_id=invoice.invoice_id, currency=invoice.currency, entries=tuple(entries)
    )


def due_periods(
    schedule: RevenueSchedule, recognised_through: str | None, as_of: date
) -> list[str]:
    """Periods of the schedule not yet recognised whose close date has come by ``as_of``,
    in the order their journals must be posted."""
    return [
        period
        for period in _unrecognised_periods(schedule, recognised_through)
        if closes_on(period) <= as_of
    ]


def next_close(schedule: RevenueSchedule, recognised_through: str | None) -> date | None:
    """When the first not-yet-recognised period closes (the saga's next timer); ``None``
    once every period is recognised."""
    pending = _unrecognised_periods(schedule, recognised_through)
    return closes_on(pending[0]) if pending else None


def _unrecognised_periods(schedule: RevenueSchedule, recognised_through: str | None) -> list[str]:
    if recognised_through is None:
        return schedule.periods()
    check_period(recognised_through)
    return [period for period in schedule.periods() if period > recognised_through]


def _check_open(recognised_through: str | None, current_period: str) -> None:
    check_period(current_period)
    if recognised_through is None:
        return
    check_period(recognised_through)
    if current_period <= recognised_through:
        raise RevenueError(
            f"current period {current_period} is already recognised (recognised through "
            f"{recognised_through}): a correction must be posted in a later, open period"
        )


class Reversal(BaseModel):
    """What voiding the invoice does to its revenue: the not-yet-recognised entries are
    cancelled (never posted), and each line's recognised revenue is reversed by one journal
    in ``period``."""

    model_config = ConfigDict(frozen=True)

    invoice_id: str
    currency: CurrencyCode
    period: Period
    cancelled: tuple[RevenueEntry, ...]
    journals: tuple[RevenueEntry, ...]

    def total_by_line(self) -> dict[str, Decimal]:
        """Revenue the reversal journals post per line (negative)."""
        return _by_line(self.journals)


def reverse(
    schedule: RevenueSchedule, recognised_through: str | None, current_period: str
) -> Reversal:
    """Void: cancel what is not recognised, reverse what is, in ``current_period``.

    A line whose recognised entries net to zero needs no journal and gets none.
    """
    _check_open(recognised_through, current_period)
    recognised = schedule.recognised_by_line(recognised_through)
    journals = tuple(
        RevenueEntry(
            id=void_journal_id(schedule.invoice_id, line_id, current_period),
            line_id=line_id,
            period=current_period,
            amount=-amount,
        )
        for line_id, amount in sorted(recognised.items())
        if amount != 0
    )
    cancelled = tuple(
        entry
        for entry in schedule.entries
        if recognised_through is None or entry.period > recognised_through
    )
    return Reversal(
        invoice_id=schedule.invoice_id,
        currency=schedule.currency,
        period=current_period,
        cancelled=cancelled,
        journals=journals,
    )


def apply_credit(
    schedule: RevenueSchedule,
    credit: Mapping[str, Decimal],
    recognised_through: str | None,
    current_period: str,
) -> RevenueSchedule:
    """The schedule after a credit note taking ``credit[line_id]`` (positive, in the invoice
    currency) off each named line.

    The line's not-yet-recognised entries shrink pro rata to their amounts (rounded toward
    zero, the remainder on the last one) so the line total drops by exactly the credit.
    When the credit is larger than what is left unrecognised, those entries drop to zero and
    the excess is taken back from recognised revenue: the line's entry in
    ``current_period`` (created if the line has none there) becomes negative. Like every
    entry, it is posted when ``current_period`` closes, under its usual id; entries already
    recognised never change.
    """
    _check_open(recognised_through, current_period)
    totals = schedule.total_by_line()
    problems: list[str] = []
    for line_id, amount in credit.items():
        if line_id not in totals:
            problems.append(
                f"credit names line {line_id!r}, which is not on invoice {schedule.invoice_id}"
            )
        elif amount <= 0:
            problems.append(f"credit on line {line_id!r} must be positive, not {amount}")
        elif amount != quantize(amount, schedule.currency):
            problems.append(
                f"credit {amount} on line {line_id!r} has more decimal places than "
                f"{schedule.currency} allows"
            )
        elif totals[line_id] <= 0:
            problems.append(
                f"line {line_id!r} has no revenue left to credit (it nets {totals[line_id]})"
            )
        elif amount > totals[line_id]:
            problems.append(
                f"credit {amount} on line {line_id!r} exceeds the line's remaining revenue "
                f"{totals[line_id]}"
            )
    if problems:
        raise RevenueError("; ".join(problems))

    currency = schedule.currency
    entries = {(entry.line_id, entry.period): entry.amount for entry in schedule.entries}
    for line_id, amount in credit.items():
        open_keys = [
            key
            for key in entries
            if key[0] == line_id and (recognised_through is None or key[1] > recognised_through)
        ]
        unrecognised = sum(to_minor(entries[key], currency) for key in open_keys)
        credited = to_minor(amount, currency)
        if credited < unrecognised:
            weights = [max(to_minor(entries[key], currency), 0) for key in open_keys]
            shares = _spread(unrecognised - credited, weights)
            excess = 0
        else:
            shares = [0] * len(open_keys)
            excess = credited - unrecognised
        for key, share in zip(open_keys, shares, strict=True):
            entries[key] = from_minor(share, currency)
        if excess:
            key = (line_id, current_period)
            current = to_minor(entries.get(key, Decimal(0)), currency)
            entries[key] = from_minor(current - excess, currency)

    return RevenueSchedule(
        invoice_id=schedule.invoice_id,
        currency=currency,
        entries=tuple(
            RevenueEntry(
                id=entry_id(schedule.invoice_id, line_id, period),
                line_id=line_id,
                period=period,
                amount=amount,
            )
            for (line_id, period), amount in sorted(
                entries.items(), key=lambda item: (item[0][1], item[0][0])
            )
        ),
    )


def take_back(
    schedule: RevenueSchedule,
    credit: Mapping[str, Decimal],
    recognised_through: str | None,
    current_period: str,
    credit_note_id: str,
) -> tuple[RevenueEntry, ...]:
    """A credit note on an invoice whose every period is recognised already (its saga has
    ended): the journals that take the credit back from recognised revenue.

    Nothing is left unrecognised to shrink, so, as :func:`apply_credit` does with the excess
    of a credit over what is left, the whole credit on each line comes back from recognised
    revenue: one negative entry per credited line in ``current_period``, keyed by the credit
    note (:func:`credit_journal_id`). They are posted at once, like a void's reversal
    journals (:func:`reverse`): the invoice has no later close left to wait for. The credit
    is checked as :func:`apply_credit` checks it (known lines, positive amounts in the
    currency's minor unit, no more than the line's revenue); a schedule with periods still
    to recognise is refused (its saga applies the credit note itself).
    """
    pending = _unrecognised_periods(schedule, recognised_through)
    if pending:
        raise RevenueError(
            f"invoice {schedule.invoice_id} still has periods to recognise "
            f"({', '.join(pending)}): its saga applies the credit note"
        )
    apply_credit(schedule, credit, recognised_through, current_period)  # the same checks
    return tuple(
        RevenueEntry(
            id=credit_journal_id(schedule.invoice_id, line_id, current_period, credit_note_id),
            line_id=line_id,
            period=current_period,
            amount=-amount,
        )
        for line_id, amount in sorted(credit.items())
        if amount != 0
    )
