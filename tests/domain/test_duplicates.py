"""Duplicate detection: normal forms of tax ids, domains and names, and match verdicts."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from domain.customer import Address
from domain.customer_master import (
    NAME_SIMILARITY_THRESHOLD,
    ChangeEvent,
    CustomerProfile,
    GoldenRecord,
    MasterField,
    MatchSignal,
    SourceVersion,
    SuspicionStrength,
    System,
    apply,
    match,
    name_similarity,
    names_similar,
    normalise_domain,
    normalise_name,
    normalise_tax_id,
    profile_of,
)


@pytest.mark.parametrize(
    ("raw", "country", "expected"),
    [
        ("DE 123.456.789", None, "DE123456789"),
        ("DE123456789", None, "DE123456789"),
        ("de-123-456-789", None, "DE123456789"),
        ("123456789", "DE", "DE123456789"),
        ("123.456.789", "de", "DE123456789"),
        ("DE123456789", "FR", "DE123456789"),  # a prefixed id keeps its own country
        ("GR 123456789", None, "EL123456789"),  # Greece's VAT prefix is EL
        ("EL123456789", None, "EL123456789"),
        ("123456789", "GR", "EL123456789"),
        ("ATU12345678", None, "ATU12345678"),
        ("U12345678", "AT", "ATU12345678"),
        ("B-1234567-8", "ES", "ESB12345678"),
        ("FR 40 303 265 045", None, "FR40303265045"),
        ("NL 8530.35.987.B01", None, "NL853035987B01"),
        ("CHE-123.456.789 MWST", None, "CHE123456789"),
        ("CHE-123.456.789 TVA", None, "CHE123456789"),
        ("123.456.789", "CH", "CHE123456789"),
        ("GB 123 4567 89", None, "GB123456789"),
        ("XI 123 4567 89", None, "XI123456789"),
        ("12-3456789", "US", "123456789"),  # a US EIN stays bare
        ("51 824 753 556", "AU", "51824753556"),
        ("\uff24\uff25\uff11\uff12\uff13", None, "DE123"),  # full-width characters
        ("", None, None),
        (" .-/ ", None, None),
        (None, "DE", None),
    ],
)
def test_tax_ids_normalise_to_one_form(raw: str | None, country: str | None, expected: str | None):
    assert normalise_tax_id(raw, country) == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("https://www.Acme.com:443/about?x=1#team", "acme.com"),
        ("http://acme.com", "acme.com"),
        ("acme.com", "acme.com"),
        ("www.acme.com", "acme.com"),
        ("WWW.ACME.COM/", "acme.com"),
        ("//acme.com/path", "acme.com"),
        ("acme.com.", "acme.com"),
        ("acme.com:8080", "acme.com"),
        ("http://user:secret@acme.com/", "acme.com"),
        ("eu.acme.com", "eu.acme.com"),  # sub-domains are kept
        ("www2.acme.com", "www2.acme.com"),
        ("sales@Acme.COM", "acme.com"),
        ("mailto:billing@acme.com", "acme.com"),
        ("Jane Doe <jane.doe@acme.com>", "acme.com"),
        ("https://www.Bücher.de/", "xn--bcher-kva.de"),
        ("einkauf@bücher.de", "xn--bcher-kva.de"),
        ("xn--bcher-kva.de", "xn--bcher-kva.de"),
        ("https://例え.jp", "xn--r8jz45g.jp"),
        ("\uff41\uff43\uff4d\uff45\uff0e\uff43\uff4f\uff4d", "acme.com"),  # full-width
        ("www.com", "www.com"),  # www. is dropped only before a registrable name
        ("localhost", None),
        ("http://10.0.0.1/", None),
        ("http://[2001:db8::1]/", None),
        ("not a domain", None),
        ("", None),
        (None, None),
    ],
)
def test_domains_come_from_urls_and_e_mails(raw: str | None, expected: str | None):
    assert normalise_domain(raw) == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("Acme", "acme"),
        ("ACME Inc", "acme"),
        ("Acme, Inc.", "acme"),
        ("Acme Incorporated", "acme"),
        ("Acme LLC", "acme"),
        ("Acme L.L.C.", "acme"),
        ("Acme Ltd", "acme"),
        ("Acme Limited", "acme"),
        ("Acme Pty Ltd", "acme"),
        ("Acme Pty. Ltd.", "acme"),
        ("Acme Corp.", "acme"),
        ("Acme GmbH", "acme"),
        ("Acme S.A.", "acme"),
        ("Acme SAS", "acme"),
        ("Acme S.A.S.", "acme"),
        ("Acme B.V.", "acme"),
        ("Acme N.V.", "acme"),
        ("Acme AB", "acme"),
        ("Acme A/S", "acme"),
        ("Acme sp. z o.o.", "acme"),
        ("Cemex, S.A.B. de C.V.", "cemex"),
        ("The Acme Company", "acme"),
        ("  acme   software  ", "acme software"),
        ("Smith & Co.", "smith"),
        ("Procter & Gamble", "procter and gamble"),
        ("Müller GmbH & Co. KG", "muller"),
        ("MÜLLER GMBH", "muller"),
        ("Société Générale S.A.", "societe generale"),
        ("Nestlé S.A.", "nestle"),
        ("Škoda Auto a.s.", "skoda auto"),
        ("Øresund Ltd", "oresund"),
        ("Straße AG", "strasse"),
        ("Łódź Sp. z o.o.", "lodz"),
        ("McDonald's Corporation", "mcdonalds"),
        ("McDonald\u2019s", "mcdonalds"),
        ("Coca-Cola", "coca cola"),
        ("Booking.com B.V.", "bookingcom"),
        (
            "\u041e\u041e\u041e \u0420\u043e\u043c\u0430\u0448\u043a\u0430",
            "\u0440\u043e\u043c\u0430\u0448\u043a\u0430",
        ),
        ("トヨタ自動車株式会社", "トヨタ自動車"),
        ("株式会社ソニー", "ソニー"),
        ("华为技术有限公司", "华为技术"),
        ("\uff34\uff4f\uff59\uff4f\uff54\uff41 Motor", "toyota motor"),
        ("Inc", "inc"),  # a name that is only a legal form keeps it
        ("", ""),
        (None, ""),
    ],
)
def test_names_lose_case_accents_punctuation_and_legal_forms(raw: str | None, expected: str):
    assert normalise_name(raw) == expected


def test_a_legal_form_inside_a_name_is_kept():
    assert normalise_name("Co Operative Bank plc") == "co operative bank"
    assert normalise_name("SA Breweries Ltd") == "sa breweries"


@pytest.mark.parametrize(
    ("a", "b", "similar"),
    [
        ("acme", "acme", True),
        ("globex", "globexx", True),
        ("acme software", "acme sofware", True),
        ("acme", "acme software", True),  # every word of one is in the other
        ("acme", "apex", False),
        ("acme", "globex", False),
        ("acme software", "acme hardware", False),
        ("", "acme", False),
        ("", "", False),
    ],
)
def test_names_similar(a: str, b: str, similar: bool):
    assert names_similar(a, b) is similar


def test_the_similarity_threshold_sits_between_a_typo_and_another_name():
    assert name_similarity("globex", "globexx") >= NAME_SIMILARITY_THRESHOLD
    assert name_similarity("acme", "apex") < NAME_SIMILARITY_THRESHOLD


def profile(golden_id: str, **fields: str | None) -> CustomerProfile:
    return CustomerProfile(golden_id=golden_id, **fields)


def signals(a: CustomerProfile, b: CustomerProfile) -> list[MatchSignal]:
    found = match(a, b)
    assert found is not None
    return [reason.signal for reason in found.reasons]


def test_the_same_tax_id_written_differently_is_a_strong_suspicion():
    a = profile("G1", name="Acme GmbH", tax_id="DE 123.456.789", country="DE")
    b = profile("G2", name="Zeta Handels GmbH", tax_id="DE123456789", country="DE")
    found = match(a, b)
    assert found is not None
    assert (found.golden_id, found.candidate) == ("G1", "G2")
    assert found.strength is SuspicionStrength.STRONG
    assert [(r.signal, r.detail) for r in found.reasons] == [
        (MatchSignal.SAME_TAX_ID, "tax id DE123456789")
    ]


def test_a_bare_tax_id_matches_the_prefixed_one_of_its_country():
    a = profile("G1", tax_id="123456789", country="DE")
    b = profile("G2", tax_id="DE 123456789", country="DE")
    assert signals(a, b) == [MatchSignal.SAME_TAX_ID]


def test_the_same_bare_number_in_two_countries_is_two_companies():
    a = profile("G1", name="Acme", tax_id="12-3456789", country="US")
    b = profile("G2", name="Acme", tax_id="123456789", country="AU")
    assert match(a, b) is None


def test_same_domain_and_similar_name_is_suspected():
    a = profile("G1", name="Acme Software Inc.", website="https://www.acme.example/")
    b = profile("G2", name="ACME Sofware", email="ap@acme.example")
    found = match(a, b)
    assert found is not None
    assert found.strength is SuspicionStrength.SUSPECTED
    assert [r.signal for r in found.reasons] == [MatchSignal.SAME_DOMAIN, MatchSignal.SIMILAR_NAME]
    assert found.reasons[0].detail == "domain acme.example"
    assert "'acme software' and 'acme sofware'" in found.reasons[1].detail


def test_same_domain_and_same_name_is_suspected_with_the_name_as_reason():
    a = profile("G1", name="Acme, Inc.", website="acme.example")
    b = profile("G2", name="ACME", website="http://acme.example/contact")
    assert signals(a, b) == [MatchSignal.SAME_DOMAIN, MatchSignal.SAME_NAME]


def test_the_legal_entity_counts_as_a_name():
    a = profile("G1", name="Acme", website="acme.example")
    b = profile("G2", name="Roadrunner Supplies", legal_entity="Acme GmbH", website="acme.example")
    assert signals(a, b) == [MatchSignal.SAME_DOMAIN, MatchSignal.SAME_NAME]


def test_the_same_name_alone_is_too_weak():
    a = profile("G1", name="Acme Inc.", website="acme-us.example")
    b = profile("G2", name="ACME Ltd", website="acme-uk.example")
    assert match(a, b) is None


def test_the_same_domain_alone_is_too_weak():
    a = profile("G1", name="Acme Rockets", website="acme.example")
    b = profile("G2", name="Zeta Anvils", website="acme.example")
    assert match(a, b) is None


def test_a_free_mail_domain_is_no_signal():
    a = profile("G1", name="Smith Plumbing", email="smith.plumbing@gmail.com")
    b = profile("G2", name="Smith Plumbing LLC", email="office.smith@gmail.com")
    assert match(a, b) is None


def test_different_tax_ids_are_distinct_companies_whatever_else_matches():
    a = profile("G1", name="Acme GmbH", website="acme.example", tax_id="DE123456789")
    b = profile("G2", name="Acme GmbH", website="acme.example", tax_id="DE987654321")
    assert match(a, b) is None


def test_one_missing_tax_id_does_not_block_a_domain_and_name_match():
    a = profile("G1", name="Acme", website="acme.example", tax_id="DE123456789")
    b = profile("G2", name="Acme", website="acme.example")
    assert match(a, b) is not None


def test_a_record_is_not_its_own_duplicate():
    a = profile("G1", name="Acme", website="acme.example", tax_id="DE123456789")
    assert match(a, a) is None


def test_a_strong_match_lists_every_signal_found():
    a = profile("G1", name="Acme", website="acme.example", tax_id="DE123456789")
    b = profile("G2", name="Acme GmbH", email="ap@acme.example", tax_id="DE 123 456 789")
    found = match(a, b)
    assert found is not None
    assert found.strength is SuspicionStrength.STRONG
    assert [r.signal for r in found.reasons] == [
        MatchSignal.SAME_TAX_ID,
        MatchSignal.SAME_DOMAIN,
        MatchSignal.SAME_NAME,
    ]


def test_match_is_symmetric_in_its_verdict():
    a = profile("G1", name="Acme Software", website="acme.example")
    b = profile("G2", name="Acme", email="x@acme.example")
    ab, ba = match(a, b), match(b, a)
    assert ab is not None
    assert ba is not None
    assert ab.strength is ba.strength
    assert [r.signal for r in ab.reasons] == [r.signal for r in ba.reasons]


def test_profiles_come_from_golden_values():
    at = SourceVersion(modified_at=datetime(2026, 3, 1, 9, 0, tzinfo=UTC))
    address = Address(line1="Hauptstr. 1", city="Berlin", postal_code="10115", country="DE")
    record = GoldenRecord(golden_id="G1")
    for source, changes in (
        (System.CRM, {MasterField.NAME: "Acme", MasterField.WEBSITE: "https://acme.example"}),
        (
            System.ERP,
            {
                MasterField.TAX_ID: "123456789",
                MasterField.LEGAL_ENTITY: "Acme GmbH",
                MasterField.BILLING_ADDRESS: address,
            },
        ),
        (System.BILLING, {MasterField.EMAIL: "ap@acme.example"}),
    ):
        event = ChangeEvent(
            source=source,
            event_id=f"{source}-1",
            record_id=f"{source}-rec",
            version=at,
            changes=changes,
        )
        record = apply(record, event).record
    assert profile_of(record) == CustomerProfile(
        golden_id="G1",
        name="Acme",
        legal_entity="Acme GmbH",
        website="https://acme.example",
        email="ap@acme.example",
        tax_id="123456789",
        country="DE",
    )
    other = profile("G2", name="Zeta", tax_id="DE 123.456.789")
    found = match(profile_of(record), other)
    assert found is not None
    assert found.strength is SuspicionStrength.STRONG
