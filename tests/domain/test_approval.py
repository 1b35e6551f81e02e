"""The manual-approval policy: rules, decision validation, SLA and policy configuration."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from pydantic import ValidationError

from domain.approval import (
    ApprovalFacts,
    ApprovalPolicy,
    ApprovalReason,
    ApprovalReasonCode,
    ApprovalRequirement,
    Approver,
    ApproverRole,
    approval_requirement,
    approve_problem,
    is_same_person,
    reject_problem,
    sla_state,
)
from domain.quote import BillingType, PaymentTerms, Quote, QuoteLine

OWNER = "maya.chen@seller.example"
EXISTING = ApprovalFacts(is_new_customer=False)
POLICY = ApprovalPolicy()

SALES = ApproverRole.SALES_MANAGER
DESK = ApproverRole.DEAL_DESK
FINANCE = ApproverRole.FINANCE
Code = ApprovalReasonCode


def line(
    line_id: str = "L1",
    sku: str = "PLAT-CORE",
    *,
    quantity: str = "1",
    unit_price: str = "1000.00",
    discount: str = "0",
    billing: BillingType = BillingType.RECURRING,
) -> QuoteLine:
    return QuoteLine(
        line_id=line_id,
        sku=sku,
        quantity=Decimal(quantity),
        unit_price=Decimal(unit_price),
        discount_percent=Decimal(discount),
        billing=billing,
    )


def make_quote(
    *lines: QuoteLine,
    currency: str = "USD",
    terms: PaymentTerms = PaymentTerms.NET30,
    owner: str = OWNER,
) -> Quote:
    return Quote(
        quote_id="Q-100",
        account_id="0015e00000AcmeUS1",
        owner=owner,
        currency=currency,
        payment_terms=terms,
        start_date=date(2026, 2, 1),
        accepted_at=datetime(2026, 1, 15, 9, 30, tzinfo=UTC),
        lines=list(lines) or [line()],
    )


def requirement_for(
    quote: Quote, facts: ApprovalFacts = EXISTING, policy: ApprovalPolicy = POLICY
) -> ApprovalRequirement:
    return approval_requirement(quote, facts, policy)


def codes(requirement: ApprovalRequirement) -> list[tuple[ApprovalReasonCode, ApproverRole]]:
    return [(r.code, r.required_role) for r in requirement.reasons]


def reason(code: ApprovalReasonCode, role: ApproverRole, message: str = "m") -> ApprovalReason:
    return ApprovalReason(code=code, message=message, required_role=role)


def pending(*roles: ApproverRole) -> ApprovalRequirement:
    return ApprovalRequirement(
        reasons=[reason(Code.DISCOUNT_ABOVE_THRESHOLD, role, f"needs {role}") for role in roles]
    )


# --- roles -------------------------------------------------------------------------------


def test_roles_are_ranked_sales_manager_deal_desk_finance():
    assert [role.rank for role in (SALES, DESK, FINANCE)] == [0, 1, 2]
    assert FINANCE.covers(SALES)
    assert FINANCE.covers(DESK)
    assert DESK.covers(SALES)
    assert SALES.covers(SALES)
    assert not SALES.covers(DESK)
    assert not DESK.covers(FINANCE)


# --- the rules, one at a time ------------------------------------------------------------


def test_an_ordinary_quote_needs_no_approval():
    requirement = requirement_for(make_quote())
    assert requirement.reasons == []
    assert requirement.needed is False
    assert requirement.required_role is None


def test_a_discount_above_the_threshold_needs_a_sales_manager():
    requirement = requirement_for(make_quote(line(), line("L2", discount="25")))
    assert requirement.reasons == [
        ApprovalReason(
            code=Code.DISCOUNT_ABOVE_THRESHOLD,
            message="line L2 (PLAT-CORE) discount 25% exceeds 20%",
            required_role=SALES,
        )
    ]
    assert requirement.needed is True
    assert requirement.required_role is SALES


def test_a_discount_above_the_finance_threshold_needs_finance_once_per_line():
    requirement = requirement_for(make_quote(line(discount="45.5000")))
    assert requirement.reasons == [
        ApprovalReason(
            code=Code.FINANCE_DISCOUNT,
            message="line L1 (PLAT-CORE) discount 45.5% exceeds the finance threshold of 40%",
            required_role=FINANCE,
        )
    ]


def test_every_discounted_line_is_a_reason_of_its_own():
    requirement = requirement_for(
        make_quote(line("L1", discount="21"), line("L2", "SUPPORT-PREMIUM", discount="30"))
    )
    assert [r.message for r in requirement.reasons] == [
        "line L1 (PLAT-CORE) discount 21% exceeds 20%",
        "line L2 (SUPPORT-PREMIUM) discount 30% exceeds 20%",
    ]


@pytest.mark.parametrize(
    ("discount", "expected"),
    [
        ("0", []),
        ("20", []),
        ("20.0000", []),
        ("20.0001", [(Code.DISCOUNT_ABOVE_THRESHOLD, SALES)]),
        ("40", [(Code.DISCOUNT_ABOVE_THRESHOLD, SALES)]),
        ("40.0001", [(Code.FINANCE_DISCOUNT, FINANCE)]),
        ("100", [(Code.FINANCE_DISCOUNT, FINANCE)]),
    ],
)
def test_discount_thresholds_are_exclusive(discount, expected):
    assert codes(requirement_for(make_quote(line(discount=discount)))) == expected


def test_discount_thresholds_are_configurable():
    policy = ApprovalPolicy(max_discount_percent=Decimal(10), finance_discount_percent=Decimal(15))
    assert codes(requirement_for(make_quote(line(discount="12.5")), policy=policy)) == [
        (Code.DISCOUNT_ABOVE_THRESHOLD, SALES)
    ]
    assert codes(requirement_for(make_quote(line(discount="16")), policy=policy)) == [
        (Code.FINANCE_DISCOUNT, FINANCE)
    ]


@pytest.mark.parametrize(
    ("currency", "at_limit", "just_above"),
    [
        ("USD", "100000.00", "100000.01"),
        ("EUR", "90000.00", "90000.01"),
        ("GBP", "80000.00", "80000.01"),
        ("CAD", "135000.00", "135000.01"),
        ("JPY", "15000000", "15000001"),
    ],
)
def test_amount_limit_per_currency_is_exclusive_to_the_minor_unit(currency, at_limit, just_above):
    at = make_quote(line(unit_price=at_limit), currency=currency)
    above = make_quote(line(unit_price=just_above), currency=currency)
    assert at.total == Decimal(at_limit)
    assert requirement_for(at).reasons == []
    assert codes(requirement_for(above)) == [(Code.AMOUNT_ABOVE_LIMIT, FINANCE)]


def test_the_amount_reason_names_total_and_limit_in_the_quote_currency():
    usd = requirement_for(make_quote(line(unit_price="100000.01")))
    assert usd.reasons[0].message == (
        "quote total 100,000.01 USD exceeds the USD limit of 100,000.00 USD"
    )
    jpy = requirement_for(make_quote(line(unit_price="15000001"), currency="JPY"))
    assert jpy.reasons[0].message == (
        "quote total 15,000,001 JPY exceeds the JPY limit of 15,000,000 JPY"
    )


def test_the_limit_applies_to_the_discounted_total():
    # 2 x 60,000.00 at 20% off = 96,000.00: under the limit although the list total is not.
    assert requirement_for(make_quote(line(quantity="2", unit_price="60000", discount="20"))) == (
        ApprovalRequirement()
    )


def test_a_currency_without_a_limit_always_needs_finance():
    requirement = requirement_for(make_quote(line(unit_price="10.00"), currency="CHF"))
    assert requirement.reasons == [
        ApprovalReason(
            code=Code.NO_AMOUNT_LIMIT_FOR_CURRENCY,
            message=(
                "no approval limit is configured for CHF: a quote in CHF (total 10.00 CHF) "
                "always needs finance approval"
            ),
            required_role=FINANCE,
        )
    ]
    no_usd = ApprovalPolicy(amount_limits={"EUR": Decimal(90000)})
    assert codes(requirement_for(make_quote(), policy=no_usd)) == [
        (Code.NO_AMOUNT_LIMIT_FOR_CURRENCY, FINANCE)
    ]


@pytest.mark.parametrize(
    "terms", [PaymentTerms.DUE_ON_RECEIPT, PaymentTerms.NET15, PaymentTerms.NET30]
)
def test_standard_payment_terms_need_no_approval(terms):
    assert requirement_for(make_quote(terms=terms)).reasons == []


@pytest.mark.parametrize("terms", [PaymentTerms.NET45, PaymentTerms.NET60, PaymentTerms.NET90])
def test_other_payment_terms_need_the_deal_desk(terms):
    requirement = requirement_for(make_quote(terms=terms))
    assert requirement.reasons == [
        ApprovalReason(
            code=Code.NON_STANDARD_PAYMENT_TERMS,
            message=(
                f"payment terms {terms.value} are not standard "
                "(standard: DUE_ON_RECEIPT, NET15, NET30)"
            ),
            required_role=DESK,
        )
    ]


def test_standard_payment_terms_are_configurable():
    policy = ApprovalPolicy(standard_payment_terms=frozenset({PaymentTerms.NET60}))
    assert requirement_for(make_quote(terms=PaymentTerms.NET60), policy=policy).reasons == []
    assert requirement_for(make_quote(terms=PaymentTerms.NET30), policy=policy).reasons[
        0
    ].message == ("payment terms NET30 are not standard (standard: NET60)")


@pytest.mark.parametrize(
    ("facts", "message"),
    [
        (
            ApprovalFacts(is_new_customer=True),
            "new customer 0015e00000AcmeUS1 has no credit check on record",
        ),
        (
            ApprovalFacts(is_new_customer=True, credit_check_approved=False),
            "new customer 0015e00000AcmeUS1 failed its credit check",
        ),
    ],
)
def test_a_new_customer_without_an_approved_credit_check_needs_finance(facts, message):
    assert requirement_for(make_quote(), facts).reasons == [
        ApprovalReason(
            code=Code.NEW_CUSTOMER_WITHOUT_CREDIT_CHECK, message=message, required_role=FINANCE
        )
    ]


@pytest.mark.parametrize(
    "facts",
    [
        ApprovalFacts(is_new_customer=True, credit_check_approved=True),
        ApprovalFacts(is_new_customer=False, credit_check_approved=None),
        ApprovalFacts(is_new_customer=False, credit_check_approved=False),
    ],
)
def test_approved_new_customers_and_existing_customers_need_no_credit_approval(facts):
    assert requirement_for(make_quote(), facts).reasons == []


def test_the_credit_check_rule_can_be_switched_off():
    policy = ApprovalPolicy(require_credit_check_for_new_customers=False)
    assert requirement_for(make_quote(), ApprovalFacts(is_new_customer=True), policy).reasons == []


# --- rules combined ----------------------------------------------------------------------


def test_every_applicable_reason_is_listed_in_order_and_the_highest_role_wins():
    quote = make_quote(
        line("L1", discount="25"),
        line("L2", "SUPPORT-PREMIUM", discount="50", unit_price="250000.00"),
        terms=PaymentTerms.NET60,
    )
    requirement = requirement_for(quote, ApprovalFacts(is_new_customer=True))
    assert codes(requirement) == [
        (Code.DISCOUNT_ABOVE_THRESHOLD, SALES),
        (Code.FINANCE_DISCOUNT, FINANCE),
        (Code.AMOUNT_ABOVE_LIMIT, FINANCE),
        (Code.NON_STANDARD_PAYMENT_TERMS, DESK),
        (Code.NEW_CUSTOMER_WITHOUT_CREDIT_CHECK, FINANCE),
    ]
    assert requirement.required_role is FINANCE


def test_required_role_is_the_highest_rank_not_the_highest_string():
    # As strings "sales_manager" > "deal_desk"; by rank the deal desk is higher.
    requirement = requirement_for(make_quote(line(discount="25"), terms=PaymentTerms.NET45))
    assert codes(requirement) == [
        (Code.DISCOUNT_ABOVE_THRESHOLD, SALES),
        (Code.NON_STANDARD_PAYMENT_TERMS, DESK),
    ]
    assert requirement.required_role is DESK


def test_a_requirement_round_trips_through_json_with_its_derived_fields():
    requirement = requirement_for(make_quote(line(discount="25"), terms=PaymentTerms.NET45))
    dumped = requirement.model_dump(mode="json")
    assert dumped["needed"] is True
    assert dumped["required_role"] == "deal_desk"
    assert ApprovalRequirement.model_validate_json(requirement.model_dump_json()) == requirement


# --- approving ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("owner", "approver_name"),
    [
        (OWNER, OWNER),
        (OWNER, "  Maya.Chen@Seller.EXAMPLE  "),
        ("  MAYA.CHEN@seller.example ", OWNER),
        (OWNER, "Maya Chen <maya.chen@seller.example>"),
        ("Maya Chen", "  maya chen"),
    ],
)
def test_the_quote_owner_may_not_approve_their_own_quote(owner, approver_name):
    approver = Approver(name=approver_name, role=FINANCE)
    problem = approve_problem(pending(SALES), approver, owner)
    assert problem is not None
    assert "owns this quote and may not approve it" in problem


def test_other_people_are_not_the_owner():
    assert not is_same_person(OWNER, "tom.okafor@seller.example")
    assert not is_same_person(OWNER, "maya.chen@seller.example.org")
    assert not is_same_person("Maya Chen", "Maya Chen <maya.chen@seller.example>")
    approver = Approver(name="tom.okafor@seller.example", role=SALES)
    assert approve_problem(pending(SALES), approver, OWNER) is None


def test_a_role_below_the_required_one_is_refused_naming_the_role_and_the_reasons():
    requirement = requirement_for(
        make_quote(line(discount="25", unit_price="200000.00"), terms=PaymentTerms.NET45)
    )
    assert requirement.required_role is FINANCE
    problem = approve_problem(requirement, Approver(name="Ines", role=DESK), OWNER)
    # Only the reason beyond the deal desk is named: it may approve the discount and terms.
    assert problem == (
        "deal_desk may not approve this quote: it needs finance or higher because "
        "quote total 150,000.00 USD exceeds the USD limit of 100,000.00 USD"
    )
    sales_problem = approve_problem(requirement, Approver(name="Ines", role=SALES), OWNER)
    assert sales_problem is not None
    assert sales_problem.startswith("sales_manager may not approve this quote: it needs finance")
    assert "payment terms NET45 are not standard" in sales_problem
    assert "discount 25%" not in sales_problem


@pytest.mark.parametrize(
    ("required", "role"),
    [(SALES, SALES), (SALES, DESK), (SALES, FINANCE), (DESK, DESK), (DESK, FINANCE)],
)
def test_the_required_role_or_a_higher_one_may_approve(required, role):
    assert approve_problem(pending(required), Approver(name="Tom", role=role), OWNER) is None


@pytest.mark.parametrize("role", list(ApproverRole))
def test_nothing_to_approve_when_no_approval_is_pending(role):
    problem = approve_problem(ApprovalRequirement(), Approver(name="Tom", role=role), OWNER)
    assert problem == "no approval pending: the quote needs no manual approval"


def test_an_approver_needs_a_name_and_a_known_role():
    assert Approver(name="  Tom  ", role=SALES).name == "Tom"
    with pytest.raises(ValidationError, match="at least 1 character"):
        Approver(name="   ", role=SALES)
    with pytest.raises(ValidationError, match="'sales_manager', 'deal_desk' or 'finance'"):
        Approver.model_validate({"name": "Tom", "role": "ceo"})


# --- rejecting ---------------------------------------------------------------------------


@pytest.mark.parametrize("why", [None, "", "   \n\t"])
def test_a_rejection_needs_a_reason(why):
    problem = reject_problem(pending(SALES), Approver(name="Tom", role=FINANCE), OWNER, why)
    assert problem == "a rejection needs a reason"


def test_a_rejection_with_a_reason_by_a_sufficient_role_is_accepted():
    approver = Approver(name="Tom", role=DESK)
    assert reject_problem(pending(SALES, DESK), approver, OWNER, "margin too thin") is None


def test_only_a_role_that_could_approve_may_reject():
    problem = reject_problem(pending(FINANCE), Approver(name="Tom", role=DESK), OWNER, "no")
    assert problem == (
        "deal_desk may not reject this quote: it needs finance or higher because needs finance"
    )


def test_the_owner_may_not_reject_their_own_quote():
    approver = Approver(name=" Maya.Chen@seller.example", role=FINANCE)
    problem = reject_problem(pending(SALES), approver, OWNER, "changed my mind")
    assert problem == (
        "Maya.Chen@seller.example owns this quote and may not reject it here; withdraw it in CPQ"
    )


def test_nothing_to_reject_when_no_approval_is_pending():
    problem = reject_problem(ApprovalRequirement(), Approver(name="Tom", role=FINANCE), OWNER, "x")
    assert problem == "no approval pending: the quote needs no manual approval"


# --- SLA ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("waited", "state"),
    [
        (timedelta(0), "on_time"),
        (timedelta(hours=8) - timedelta(microseconds=1), "on_time"),
        (timedelta(hours=8), "escalated"),
        (timedelta(days=5) - timedelta(microseconds=1), "escalated"),
        (timedelta(days=5), "expired"),
        (timedelta(days=30), "expired"),
    ],
)
def test_sla_state_boundaries(waited, state):
    assert sla_state(waited, POLICY) == state


def test_sla_state_follows_the_policy():
    policy = ApprovalPolicy(escalate_after=timedelta(minutes=30), expire_after=timedelta(hours=1))
    assert sla_state(timedelta(minutes=29), policy) == "on_time"
    assert sla_state(timedelta(minutes=30), policy) == "escalated"
    assert sla_state(timedelta(hours=1), policy) == "expired"


# --- policy configuration ----------------------------------------------------------------


def test_policy_defaults():
    assert POLICY.max_discount_percent == Decimal(20)
    assert POLICY.finance_discount_percent == Decimal(40)
    assert POLICY.amount_limits == {
        "USD": Decimal(100000),
        "EUR": Decimal(90000),
        "GBP": Decimal(80000),
        "CAD": Decimal(135000),
        "JPY": Decimal(15000000),
    }
    assert (
        frozenset({PaymentTerms.DUE_ON_RECEIPT, PaymentTerms.NET15, PaymentTerms.NET30})
        == POLICY.standard_payment_terms
    )
    assert POLICY.require_credit_check_for_new_customers is True
    assert POLICY.escalate_after == timedelta(hours=8)
    assert POLICY.expire_after == timedelta(days=5)
    assert all(field.description for field in ApprovalPolicy.model_fields.values())


def errors_of(changes: dict[str, Any]) -> list[tuple[str, str]]:
    with pytest.raises(ValidationError) as info:
        ApprovalPolicy.model_validate(changes)
    return [(".".join(map(str, e["loc"])), e["msg"]) for e in info.value.errors()]


@pytest.mark.parametrize(
    ("changes", "escalate", "expire"),
    [
        ({"escalate_after": "PT8H", "expire_after": "PT8H"}, "8:00:00", "8:00:00"),
        ({"escalate_after": "PT8H", "expire_after": "PT1H"}, "8:00:00", "1:00:00"),
        ({"escalate_after": "P6D"}, "6 days, 0:00:00", "5 days, 0:00:00"),
    ],
)
def test_expiry_must_come_after_escalation(changes, escalate, expire):
    assert errors_of(changes) == [
        (
            "expire_after",
            f"Value error, expire_after ({expire}) must be longer than escalate_after ({escalate})",
        )
    ]


@pytest.mark.parametrize(
    ("changes", "field", "message"),
    [
        ({"max_discount_percent": "-1"}, "max_discount_percent", "greater than or equal to 0"),
        ({"finance_discount_percent": "-1"}, "finance_discount_percent", "greater than or equal"),
        ({"finance_discount_percent": "101"}, "finance_discount_percent", "less than or equal"),
        ({"amount_limits": {"USD": "-0.01"}}, "amount_limits.USD", "greater than or equal to 0"),
        ({"amount_limits": {"USD": "NaN"}}, "amount_limits.USD", "finite number"),
        ({"amount_limits": {"usd": "1"}}, "amount_limits.usd.[key]", "unsupported currency"),
        ({"escalate_after": "-PT1H"}, "escalate_after", "greater than 0 seconds"),
        ({"escalate_after": "PT0S"}, "escalate_after", "greater than 0 seconds"),
        ({"expire_after": "-P1D"}, "expire_after", "greater than 0 seconds"),
        ({"standard_payment_terms": ["NET7"]}, "standard_payment_terms.0", "Input should be"),
        ({"max_discount": "10"}, "max_discount", "Extra inputs are not permitted"),
    ],
)
def test_invalid_policies_are_refused_precisely(changes, field, message):
    errors = errors_of(changes)
    assert any(loc == field and message in msg for loc, msg in errors), errors


def test_the_finance_discount_threshold_may_not_be_below_the_sales_one():
    assert errors_of({"max_discount_percent": "30", "finance_discount_percent": "25"}) == [
        (
            "finance_discount_percent",
            "Value error, finance_discount_percent (25%) must not be below "
            "max_discount_percent (30%)",
        )
    ]
    # The default finance threshold is checked too.
    assert errors_of({"max_discount_percent": "50"})[0][0] == "finance_discount_percent"
    equal = ApprovalPolicy(max_discount_percent=Decimal(30), finance_discount_percent=Decimal(30))
    assert codes(requirement_for(make_quote(line(discount="31")), policy=equal)) == [
        (Code.FINANCE_DISCOUNT, FINANCE)
    ]


def test_a_limit_may_not_be_finer_than_the_currency_minor_unit():
    assert errors_of({"amount_limits": {"JPY": "1000.5"}}) == [
        (
            "amount_limits",
            "Value error, the JPY limit 1000.5 has more decimal places than JPY uses (0)",
        )
    ]
    assert errors_of({"amount_limits": {"USD": "10.001"}})[0][1].endswith("USD uses (2)")
    assert ApprovalPolicy(amount_limits={"USD": Decimal("10.000")}).amount_limits == {
        "USD": Decimal("10")
    }


def test_a_policy_round_trips_through_json_exactly():
    policy = ApprovalPolicy(
        max_discount_percent=Decimal("17.5"),
        finance_discount_percent=Decimal("33.3333"),
        amount_limits={
            "USD": Decimal("100000.50"),
            "JPY": Decimal("15000000"),
            "KWD": Decimal("30000.125"),
        },
        standard_payment_terms=frozenset({PaymentTerms.NET60, PaymentTerms.DUE_ON_RECEIPT}),
        require_credit_check_for_new_customers=False,
        escalate_after=timedelta(hours=7, minutes=30, seconds=15, microseconds=250),
        expire_after=timedelta(days=3, hours=1),
    )
    text = policy.model_dump_json()
    restored = ApprovalPolicy.model_validate_json(text)
    assert restored == policy
    assert restored.model_dump_json() == text
    assert {c: str(v) for c, v in restored.amount_limits.items()} == {
        "USD": "100000.50",
        "JPY": "15000000",
        "KWD": "30000.125",
    }
    assert str(restored.finance_discount_percent) == "33.3333"
    assert restored.escalate_after == timedelta(hours=7, minutes=30, seconds=15, microseconds=250)
    assert restored.expire_after == timedelta(days=3, hours=1)
    # Sets have no order: the JSON lists terms by days so the workflow input is stable.
    assert '"standard_payment_terms":["DUE_ON_RECEIPT","NET60"]' in text
    assert ApprovalPolicy.model_validate_json(POLICY.model_dump_json()) == POLICY


def test_payment_terms_serialize_in_a_stable_order():
    every = ApprovalPolicy(standard_payment_terms=frozenset(PaymentTerms))
    assert every.model_dump(mode="json")["standard_payment_terms"] == [
        "DUE_ON_RECEIPT",
        "NET15",
        "NET30",
        "NET45",
        "NET60",
        "NET90",
    ]


def test_a_policy_is_immutable():
    with pytest.raises(ValidationError, match="frozen"):
        POLICY.max_discount_percent = Decimal(50)  # type: ignore[misc]
