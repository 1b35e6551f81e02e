"""Duplicate detection: do two golden customers describe the same company?

Signals, compared on normal forms (:mod:`domain.customer_master.normalise`):

============================  ==========================================================
same tax id                   **strong**: one legal entity has one tax id
same domain + similar name    **suspected**: the website or a non-free-mail e-mail
                              domain is shared and the names (or legal entities) are
                              similar (:func:`~domain.customer_master.normalise.names_similar`)
same name only                weak: many companies share a name: not a suspicion
same domain only              weak: one group's subsidiaries share a domain: not a
                              suspicion
different tax ids             distinct legal entities (two subsidiaries sharing a domain
                              and a brand): never a suspicion, whatever else matches
============================  ==========================================================

Any suspicion is held for a data steward (``MasterState=NEEDS_REVIEW``); nothing is merged
automatically, not even on a strong match.
"""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, ConfigDict

from domain.customer_master.fields import GoldenId
from domain.customer_master.normalise import (
    name_similarity,
    names_similar,
    normalise_domain,
    normalise_name,
    normalise_tax_id,
)

FREE_MAIL_DOMAINS = frozenset(
    {
        "163.com",
        "aol.com",
        "gmail.com",
        "gmx.de",
        "gmx.net",
        "googlemail.com",
        "hotmail.com",
        "icloud.com",
        "live.com",
        "mail.ru",
        "me.com",
        "msn.com",
        "outlook.com",
        "proton.me",
        "protonmail.com",
        "qq.com",
        "web.de",
        "yahoo.com",
        "yandex.ru",
    }
)
"""Mailbox providers: thousands of unrelated customers share these, so they are no signal."""


class MatchSignal(StrEnum):
    SAME_TAX_ID = "same_tax_id"
    SAME_DOMAIN = "same_domain"
    SAME_NAME = "same_name"
    SIMILAR_NAME = "similar_name"


class SuspicionStrength(StrEnum):
    STRONG = "strong"  # same tax id
    SUSPECTED = "suspected"  # same domain and a similar name


class MatchReason(BaseModel):
    model_config = ConfigDict(frozen=True)

    signal: MatchSignal
    detail: str


class DuplicateSuspicion(BaseModel):
    """``golden_id`` may be the same company as ``candidate``, for these reasons."""

    model_config = ConfigDict(frozen=True)

    golden_id: GoldenId
    candidate: GoldenId
    strength: SuspicionStrength
    reasons: tuple[MatchReason, ...]


class CustomerProfile(BaseModel):
    """What duplicate detection compares: a golden record's identifying fields."""

    model_config = ConfigDict(frozen=True)

    golden_id: GoldenId
    name: str | None = None
    legal_entity: str | None = None
    website: str | None = None
    email: str | None = None
    tax_id: str | None = None
    country: str | None = None  # ISO 3166-1 alpha-2, from the billing address

    def tax_key(self) -> tuple[str | None, str] | None:
        """The tax id as compared: prefixed ids stand alone, bare ones (a US EIN) only mean
        something within their country."""
        tax_id = normalise_tax_id(self.tax_id, self.country)
        if tax_id is None:
            return None
        if tax_id[0].isalpha():
            return (None, tax_id)
        return (self.country, tax_id)

    def domains(self) -> set[str]:
        found = {normalise_domain(self.website), normalise_domain(self.email)}
        return {d for d in found if d is not None and d not in FREE_MAIL_DOMAINS}

    def names(self) -> set[str]:
        found = {normalise_name(self.name), normalise_name(self.legal_entity)}
        return {n for n in found if n}


def _same_tax_id(a: CustomerProfile, b: CustomerProfile) -> bool | None:
    """True or False when both have a tax id, None when either has none. Bare ids from
    different known countries differ; a bare id with no country matches the same digits."""
    key_a, key_b = a.tax_key(), b.tax_key()
    if key_a is None or key_b is None:
        return None
    (country_a, id_a), (country_b, id_b) = key_a, key_b
    if id_a != id_b:
        return False
    return country_a is None or country_b is None or country_a == country_b


def _name_reasons(a: CustomerProfile, b: CustomerProfile) -> list[MatchReason]:
    names_a, names_b = sorted(a.names()), sorted(b.names())
    same = sorted(set(names_a) & set(names_b))
    if same:
        return [MatchReason(signal=MatchSignal.SAME_NAME, detail=f"both named {same[0]!r}")]
    pairs = [(x, y) for x in names_a for y in names_b if names_similar(x, y)]
    if not pairs:
        return []
    x, y = max(pairs, key=lambda pair: (name_similarity(*pair), pair))
    detail = f"{x!r} and {y!r} (similarity {name_similarity(x, y):.2f})"
    return [MatchReason(signal=MatchSignal.SIMILAR_NAME, detail=detail)]


def match(a: CustomerProfile, b: CustomerProfile) -> DuplicateSuspicion | None:
    """Whether ``b`` is suspected to duplicate ``a``, with every signal found; None when the
    signals are too weak or contradict it (see the module's table)."""
    if a.golden_id == b.golden_id:
        return None
    same_tax_id = _same_tax_id(a, b)
    if same_tax_id is False:
        return None
    reasons: list[MatchReason] = []
    if same_tax_id:
        tax_id = normalise_tax_id(a.tax_id, a.country)
        reasons.append(MatchReason(signal=MatchSignal.SAME_TAX_ID, detail=f"tax id {tax_id}"))
    shared_domains = sorted(a.domains() & b.domains())
    if shared_domains:
        detail = f"domain {', '.join(shared_domains)}"
        reasons.append(MatchReason(signal=MatchSignal.SAME_DOMAIN, detail=detail))
    name_reasons = _name_reasons(a, b)
    reasons.extend(name_reasons)
    if same_tax_id:
        strength = SuspicionStrength.STRONG
    elif shared_domains and name_reasons:
        strength = SuspicionStrength.SUSPECTED
    else:
        return None
    return DuplicateSuspicion(
        golden_id=a.golden_id, candidate=b.golden_id, strength=strength, reasons=tuple(reasons)
    )
