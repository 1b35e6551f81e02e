"""The saga kernel: what every revsync workflow does the same way around its business steps.

So far: how a step's activity is timed and retried, how its failure is read (a vendor's
refusal, revsync's own misconfiguration, a spent daily quota, a spent retry budget) and the
reason an operator reads when it parks.

- Each attempt runs at most :data:`ATTEMPT_TIMEOUT`; activities heartbeat
  (``workers/attempts.py``), so a dead worker is noticed after :data:`HEARTBEAT_TIMEOUT`.
- A step's retry budget bounds retrying, not queue wait (``workers/attempts.py``).
- :func:`retry_policy`: transient failures back off from 1 s; refusals are final.
- :func:`step_failure`: what ended a step's attempts.
- Priorities: bookings before revenue journals before reconciliation's reads, where a task
  queue has a backlog (Temporal 1.28+ honours them; an older server ignores them).
- :func:`current_policies`: the deployment's policies, for a saga's next run.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import Priority, RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from domain.contracts import TaskQueue
    from domain.policies import CURRENT_POLICIES, CurrentPolicies
    from domain.saga import FailureType

# Task priorities where a queue has a backlog (lower runs first; Temporal's default is 3): a
# customer's order is booked before a month's revenue journals are posted, and both before
# reconciliation's reads.
BOOKING_PRIORITY = Priority(priority_key=2)
LEDGER_PRIORITY = Priority(priority_key=4)
LISTING_PRIORITY = Priority(priority_key=5)

# Attempts run at most this long each; the step's retry budget bounds all attempts together.
ATTEMPT_TIMEOUT = timedelta(minutes=2)
# Activities heartbeat (workers.attempts): an attempt whose worker died is retried elsewhere
# after this long, not after ATTEMPT_TIMEOUT.
HEARTBEAT_TIMEOUT = timedelta(seconds=15)


def retry_policy(maximum_interval: timedelta = timedelta(minutes=1)) -> RetryPolicy:
    """Transient failures back off from 1 s; business rejections are final."""
    return RetryPolicy(
        initial_interval=timedelta(seconds=1),
        backoff_coefficient=2.0,
        maximum_interval=maximum_interval,
        non_retryable_error_types=list(FailureType.NON_RETRYABLE),
    )


def rejection_reason(error: ActivityError) -> str | None:
    """The business reason if ``error`` is a non-retryable rejection, else None."""
    cause = error.cause
    if isinstance(cause, ApplicationError) and cause.type in FailureType.NON_RETRYABLE:
        return cause.message
    return None


def failure_summary(error: ActivityError) -> str:
    """A readable reason for an activity that ran out of its retry budget."""
    cause: BaseException | None = error.cause
    messages: list[str] = []
    while cause is not None and len(messages) < 3:
        text = getattr(cause, "message", None) or str(cause)
        if text and text not in messages:
            messages.append(text)
        cause = cause.__cause__
    return "; ".join(messages) or "failed"


def spent_quota(error: ActivityError) -> dict[str, Any] | None:
    """The details of the last failure if it was a spent daily quota (``throttle`` ``quota``,
    set by :mod:`activities.classify`), else None."""
    cause: BaseException | None = error.cause
    while cause is not None:
        # The vendor's last answer, or the budget it spent (which carries that answer's
        # details, workers/attempts.py).
        if isinstance(cause, ApplicationError) and cause.type in (
            FailureType.VENDOR_TRANSIENT,
            FailureType.RETRY_BUDGET_EXHAUSTED,
        ):
            details = cause.details[0] if cause.details else None
            if isinstance(details, dict) and details.get("throttle") == "quota":
                return details
        cause = cause.__cause__
    return None


def configuration_refusal(error: ActivityError) -> str | None:
    """The vendor's message if ``error`` is a refusal of revsync's own credentials or
    configuration (``VendorMisconfigured``: not retried, nothing to compensate), else None."""
    cause = error.cause
    if isinstance(cause, ApplicationError) and cause.type == FailureType.VENDOR_MISCONFIGURED:
        return cause.message
    return None


def step_failure(error: ActivityError, budget: timedelta) -> tuple[str | None, str]:
    """What ended a step's attempts: the vendor's refusal (None when the retry budget ran out
    instead, or when the vendor refused revsync's configuration, which parks the step at
    once) and the reason an operator reads. A budget spent waiting on a vendor's daily
    quota says so: the step is not failing, the vendor's allowance is used up, and a retry
    helps once it has recovered (Salesforce: once the org's last 24 hours of calls are under
    its limit)."""
    rejected = rejection_reason(error)
    if rejected is not None:
        return rejected, rejected
    misconfigured = configuration_refusal(error)
    if misconfigured is not None:
        return None, (
            "the vendor refused revsync's credentials or configuration (not retried; fix "
            f"it, then retry the step): {misconfigured}"
        )
    quota = spent_quota(error)
    if quota is not None:
        limit = str(quota.get("limit") or "the vendor's daily API request limit")
        call = " ".join(
            str(part)
            for part in (
                quota.get("vendor"),
                quota.get("operation"),
                None if quota.get("status") is None else f"HTTP {quota['status']}",
                quota.get("code"),
            )
            if part
        )
        return None, (
            f"{limit} exhausted (quota, not an outage: {call}); gave up after retrying for "
            f"{budget}: retry once the quota has recovered"
        )
    cause = error.cause
    if isinstance(cause, ApplicationError) and cause.type == FailureType.RETRY_BUDGET_EXHAUSTED:
        return None, cause.message  # the worker says what failed last (workers/attempts.py)
    return None, f"gave up after retrying for {budget}: {failure_summary(error)}"


async def current_policies() -> CurrentPolicies | None:
    """The deployment's policies now (``policy.current`` on the orchestration workers), for
    the run a saga continues as new into; None when no worker answers within a minute (the
    saga then keeps the policy it has: a policy change waits for a later run, nothing
    stops)."""
    try:
        policies: CurrentPolicies = await workflow.execute_activity(
            CURRENT_POLICIES,
            result_type=CurrentPolicies,
            task_queue=TaskQueue.ORCHESTRATION,
            start_to_close_timeout=timedelta(seconds=10),
            schedule_to_close_timeout=timedelta(minutes=1),
            retry_policy=RetryPolicy(maximum_attempts=3),
        )
    except ActivityError:
        workflow.logger.warning("the current policies are unavailable; the run keeps its own")
        return None
    return policies
