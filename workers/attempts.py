"""Every attempt of a vendor activity: it heartbeats while it runs, and its step's retry budget
counts the time spent retrying, never the time spent waiting in a task queue.

**Heartbeats.** Without heartbeats Temporal notices a dead worker only when the attempt's
start-to-close timeout (minutes) runs out; with a heartbeat timeout, as soon as heartbeats
stop, and the retry goes to another worker at once. The workflow sets the heartbeat timeout
on every step; this interceptor heartbeats three times per timeout, so no activity has to
remember to.

**Retry budgets.** A step retries transient failures for its budget, then parks. Temporal's
own bound, the schedule-to-close timeout, also counts the time an attempt waits in its task
queue: at a month-end close, thousands of invoice sagas queue for an ERP that takes five
calls at a time, and a step whose budget passed while it waited in line parked without a
single failure. So revsync does not give Temporal that bound:

- in the workflow, :class:`RetryBudgetInterceptor` turns a step's schedule-to-close timeout
  into the header ``revsync-retry-budget`` and leaves the activity without one (a step still
  has its per-attempt start-to-close and heartbeat timeouts);
- in the activity worker, each attempt adds its own wait in the queue (started minus
  scheduled) to what earlier attempts waited, kept in the heartbeat details that Temporal
  hands from one attempt to the next, with the last failure's message. An attempt that
  starts once the time since the first scheduling, less all queue waits, has passed the
  budget does not run: it fails as ``RetryBudgetExhausted`` (non-retryable), saying
  what failed last, and the workflow parks the step as before.

An activity that sets no schedule-to-close timeout (``events.publish``, which retries
forever and heartbeats its own details) gets neither header nor budget.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from temporalio import activity, workflow
from temporalio.api.common.v1 import Payload
from temporalio.converter import default as default_converter
from temporalio.exceptions import ApplicationError
from temporalio.worker import (
    ActivityInboundInterceptor,
    ExecuteActivityInput,
    Interceptor,
    StartActivityInput,
    WorkflowInboundInterceptor,
    WorkflowInterceptorClassInput,
    WorkflowOutboundInterceptor,
)

from domain.saga import FailureType

# Send heartbeats on to the server at least this often (the SDK's throttle is otherwise 80% of
# the heartbeat timeout, which leaves a loaded machine little margin).
MAX_HEARTBEAT_THROTTLE = timedelta(seconds=5)

BUDGET_HEADER = "revsync-retry-budget"

# Headers are not encoded by the payload codec: the budget is plain JSON seconds.
_CONVERTER = default_converter().payload_converter


def budget_header(budget: timedelta) -> Payload:
    return _CONVERTER.to_payloads([budget.total_seconds()])[0]


def read_budget(headers: Any) -> timedelta | None:
    payload = headers.get(BUDGET_HEADER) if headers else None
    if payload is None:
        return None
    seconds = _CONVERTER.from_payloads([payload], [float])[0]
    return timedelta(seconds=seconds)


@dataclass
class AttemptLog:
    """What the attempts of one activity so far have cost, carried in heartbeat details: the
    time they waited in the queue, and the last failure's message and details (a vendor
    failure's details say, e.g., that a daily quota is spent)."""

    queued_seconds: float = 0.0
    last_failure: str | None = None
    last_details: dict[str, Any] | None = None

    @classmethod
    def of(cls, details: Any) -> AttemptLog:
        """The log an earlier attempt left (empty on the first attempt, or when the details
        are not ours)."""
        if details and isinstance(details[0], dict) and "queued_seconds" in details[0]:
            found = details[0]
            last = found.get("last_details")
            return cls(
                float(found["queued_seconds"]),
                found.get("last_failure"),
                last if isinstance(last, dict) else None,
            )
        return cls()

    def detail(self) -> dict[str, Any]:
        return {
            "queued_seconds": self.queued_seconds,
            "last_failure": self.last_failure,
            "last_details": self.last_details,
        }

    def failed(self, error: BaseException) -> None:
        message = getattr(error, "message", None) or str(error) or type(error).__name__
        self.last_failure = str(message)[:1000]
        details = getattr(error, "details", None)
        self.last_details = details[0] if details and isinstance(details[0], dict) else None


def retry_time(info: activity.Info, log: AttemptLog) -> timedelta:
    """From the first scheduling to this attempt's start, less the time the attempts (this
    one included) waited in the task queue: the earlier attempts' run time and the backoffs
    between them. Both ends are the server's clock (a time-skipping test server's too)."""
    return (info.started_time - info.scheduled_time) - timedelta(seconds=log.queued_seconds)


def exhausted(budget: timedelta, log: AttemptLog) -> ApplicationError:
    """The failure of an attempt that starts past its budget: the last failure's message and
    details, so the saga parks saying what went wrong (a spent quota says so)."""
    return ApplicationError(
        f"gave up after retrying for {budget}: {log.last_failure or 'no attempt succeeded'}",
        *([log.last_details] if log.last_details is not None else []),
        type=FailureType.RETRY_BUDGET_EXHAUSTED,
        non_retryable=True,
    )


class AttemptInterceptor(Interceptor):
    """Heartbeats and retry budgets (module docstring), for the workflow and activity sides:
    register it on every worker whose workflows schedule, or whose activities run, steps."""

    def intercept_activity(self, next: ActivityInboundInterceptor) -> ActivityInboundInterceptor:
        return _Attempt(next)

    def workflow_interceptor_class(
        self, input: WorkflowInterceptorClassInput
    ) -> type[WorkflowInboundInterceptor] | None:
        return _BudgetedWorkflow


class _BudgetedWorkflow(WorkflowInboundInterceptor):
    def init(self, outbound: WorkflowOutboundInterceptor) -> None:
        super().init(_BudgetedSteps(outbound))


class _BudgetedSteps(WorkflowOutboundInterceptor):
    def start_activity(self, input: StartActivityInput) -> workflow.ActivityHandle[Any]:
        budget = input.schedule_to_close_timeout
        if budget is not None and (input.start_to_close_timeout or input.heartbeat_timeout):
            input.headers = {**input.headers, BUDGET_HEADER: budget_header(budget)}
            input.schedule_to_close_timeout = None
        return super().start_activity(input)


class _Attempt(ActivityInboundInterceptor):
    async def execute_activity(self, input: ExecuteActivityInput) -> Any:
        info = activity.info()
        log = AttemptLog.of(info.heartbeat_details)
        log.queued_seconds += max(
            (info.started_time - info.current_attempt_scheduled_time).total_seconds(), 0.0
        )
        budget = read_budget(input.headers)
        if budget is not None and info.attempt > 1 and retry_time(info, log) >= budget:
            raise exhausted(budget, log)
        timeout = info.heartbeat_timeout
        if budget is None and not timeout:
            return await self.next.execute_activity(input)
        activity.heartbeat(log.detail())
        beating = asyncio.create_task(_beat(timeout.total_seconds() / 3, log)) if timeout else None
        try:
            return await self.next.execute_activity(input)
        except Exception as error:
            log.failed(error)
            activity.heartbeat(log.detail())
            raise
        finally:
            if beating is not None:
                beating.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await beating


async def _beat(every_seconds: float, log: AttemptLog) -> None:
    while True:
        await asyncio.sleep(every_seconds)
        activity.heartbeat(log.detail())
