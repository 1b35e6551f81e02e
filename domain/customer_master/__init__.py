"""Customer master: the pure rules of the golden-customer entity workflow.

One golden record per customer (workflow ``customer-<golden id>``) gathers change events from
CRM, billing and ERP:

* :mod:`.fields` - systems, fields and their value types, and :data:`OWNERSHIP`, the
  survivorship table (which system owns which field; what a non-owner change means);
* :mod:`.record` - :class:`GoldenRecord` (the whole workflow state, carried over on
  continue-as-new), :class:`ChangeEvent`, :class:`SourceVersion`, :class:`MasterState`;
* :mod:`.survivorship` - :func:`apply` (an event's verdict per field, review items and the
  propagation plan with idempotency keys) and :func:`merge`;
* :mod:`.normalise` and :mod:`.duplicates` - normal forms of tax ids, domains and names,
  and :func:`match` (is another golden record the same company?);
* :mod:`.steward` - a data steward's decisions on duplicates and proposals.

No I/O and no clock (times are inputs): safe to import inside the Temporal workflow sandbox.
"""

from domain.customer_master.duplicates import (
    FREE_MAIL_DOMAINS,
    CustomerProfile,
    DuplicateSuspicion,
    MatchReason,
    MatchSignal,
    SuspicionStrength,
    match,
)
from domain.customer_master.fields import (
    OWNERSHIP,
    FieldChanges,
    FieldRule,
    FieldValue,
    GoldenId,
    MasterField,
    NonOwnerPolicy,
    PaymentMethodState,
    System,
    equivalent,
    field_value,
)
from domain.customer_master.normalise import (
    NAME_SIMILARITY_THRESHOLD,
    name_similarity,
    names_similar,
    normalise_domain,
    normalise_name,
    normalise_tax_id,
)
from domain.customer_master.record import (
    SEEN_EVENTS_KEPT,
    ChangeEvent,
    FieldState,
    GoldenRecord,
    MasterState,
    Proposal,
    ReviewItem,
    ReviewStatus,
    SeenEvent,
    SourceVersion,
    master_workflow_id,
)
from domain.customer_master.steward import (
    ReviewAction,
    ReviewDecision,
    ReviewSettlement,
    StewardAction,
    StewardDecision,
    allowed_decisions,
    decision_problem,
    hold,
    mark_merged,
    mark_merged_problem,
    profile_of,
    review_problem,
    settle,
    settle_review,
)
from domain.customer_master.survivorship import (
    FieldVerdict,
    Outcome,
    PropagationUpdate,
    apply,
    merge,
    merge_problem,
    propagation_key,
)

__all__ = [
    "FREE_MAIL_DOMAINS",
    "NAME_SIMILARITY_THRESHOLD",
    "OWNERSHIP",
    "SEEN_EVENTS_KEPT",
    "ChangeEvent",
    "CustomerProfile",
    "DuplicateSuspicion",
    "FieldChanges",
    "FieldRule",
    "FieldState",
    "FieldValue",
    "FieldVerdict",
    "GoldenId",
    "GoldenRecord",
    "MasterField",
    "MasterState",
    "MatchReason",
    "MatchSignal",
    "NonOwnerPolicy",
    "Outcome",
    "PaymentMethodState",
    "PropagationUpdate",
    "Proposal",
    "ReviewAction",
    "ReviewDecision",
    "ReviewItem",
    "ReviewSettlement",
    "ReviewStatus",
    "SeenEvent",
    "SourceVersion",
    "StewardAction",
    "StewardDecision",
    "SuspicionStrength",
    "System",
    "allowed_decisions",
    "apply",
    "decision_problem",
    "equivalent",
    "field_value",
    "hold",
    "mark_merged",
    "mark_merged_problem",
    "master_workflow_id",
    "match",
    "merge",
    "merge_problem",
    "name_similarity",
    "names_similar",
    "normalise_domain",
    "normalise_name",
    "normalise_tax_id",
    "profile_of",
    "propagation_key",
    "review_problem",
    "settle",
    "settle_review",
]
