"""Reading real workflow histories: events by type, billable actions as Temporal Cloud counts
them, and search-attribute upserts that changed nothing."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from temporalio.api.enums.v1 import EventType
from temporalio.api.history.v1 import History as HistoryProto
from temporalio.api.history.v1 import HistoryEvent
from temporalio.client import WorkflowHistory
from temporalio.converter import PayloadConverter

_E = EventType
# Cloud exempts the versioning attribute from upsert actions.
_CHANGE_VERSION = "TemporalChangeVersion"
# The Python SDK's patch marker: versioning, not a side effect.
_PATCH_MARKER = "core_patch"

ACTION_CATEGORIES = (
    "workflow started",
    "activity attempts",
    "timers started",
    "signals",
    "updates accepted",
    "search-attribute upserts",
    "markers (side effects)",
    "child workflows started",
)


def event_name(event: HistoryEvent) -> str:
    return _E.Name(event.event_type).removeprefix("EVENT_TYPE_")


def events_by_type(events: list[HistoryEvent]) -> Counter[str]:
    return Counter(event_name(e) for e in events)


def billable_actions(events: list[HistoryEvent]) -> Counter[str]:
    """Actions as Temporal Cloud bills them, from one history (docs.temporal.io/cloud/actions):
    a workflow start (client, continue-as-new, child), each activity attempt (started or
    retried; the last ActivityTaskStarted of an activity carries its attempt number), each
    timer started, each signal sent, each update (accepted; rejected updates are billed too but
    leave no event), each UpsertWorkflowSearchAttributes command (attributes given at start are
    free), each side-effect marker, each child workflow started. Queries are not counted here.
    """
    actions: Counter[str] = Counter({c: 0 for c in ACTION_CATEGORIES})
    for event in events:
        kind = event.event_type
        if kind in (
            _E.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED,
            _E.EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW,
        ):
            actions["workflow started"] += 1
        elif kind == _E.EVENT_TYPE_ACTIVITY_TASK_STARTED:
            actions["activity attempts"] += max(
                1, event.activity_task_started_event_attributes.attempt
            )
        elif kind == _E.EVENT_TYPE_TIMER_STARTED:
            actions["timers started"] += 1
        elif kind in (
            _E.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED,
            _E.EVENT_TYPE_SIGNAL_EXTERNAL_WORKFLOW_EXECUTION_INITIATED,
        ):
            actions["signals"] += 1
        elif kind == _E.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED:
            actions["updates accepted"] += 1
        elif kind == _E.EVENT_TYPE_UPSERT_WORKFLOW_SEARCH_ATTRIBUTES:
            fields = event.upsert_workflow_search_attributes_event_attributes.search_attributes
            if set(fields.indexed_fields) - {_CHANGE_VERSION}:
                actions["search-attribute upserts"] += 1
        elif kind == _E.EVENT_TYPE_MARKER_RECORDED:
            if event.marker_recorded_event_attributes.marker_name != _PATCH_MARKER:
                actions["markers (side effects)"] += 1
        elif kind == _E.EVENT_TYPE_START_CHILD_WORKFLOW_EXECUTION_INITIATED:
            actions["child workflows started"] += 1
    return actions


def _decoded(fields: Any) -> dict[str, Any]:
    converter = PayloadConverter.default
    values: dict[str, Any] = {}
    for name, payload in fields.items():
        value = converter.from_payload(payload) if payload.data else None
        values[name] = None if value in (None, []) else value
    return values


@dataclass
class UpsertCheck:
    upserts: int = 0
    # upserts that set every attribute to the value it already had
    unchanged: list[dict[str, Any]] = field(default_factory=list)
    # upserts whose OrderStage was the current one (something else changed, e.g. StageSince)
    same_stage: int = 0


def check_upserts(events: list[HistoryEvent]) -> UpsertCheck:
    """Compare each upsert's values with the attributes held just before it (those given at
    start, then each earlier upsert)."""
    check = UpsertCheck()
    current: dict[str, Any] = {}
    for event in events:
        if event.event_type == _E.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED:
            attrs = event.workflow_execution_started_event_attributes.search_attributes
            current = {k: v for k, v in _decoded(attrs.indexed_fields).items() if v is not None}
        elif event.event_type == _E.EVENT_TYPE_UPSERT_WORKFLOW_SEARCH_ATTRIBUTES:
            attrs = event.upsert_workflow_search_attributes_event_attributes.search_attributes
            values = _decoded(attrs.indexed_fields)
            check.upserts += 1
            if all(current.get(k) == v for k, v in values.items()):
                check.unchanged.append({"event_id": event.event_id, "values": values})
            elif "OrderStage" in values and values["OrderStage"] == current.get("OrderStage"):
                check.same_stage += 1
            for name, value in values.items():
                if value is None:
                    current.pop(name, None)
                else:
                    current[name] = value
    return check


def history_bytes(history: WorkflowHistory) -> int:
    return HistoryProto(events=history.events).ByteSize()


def workflow_tasks(events: list[HistoryEvent]) -> int:
    return sum(1 for e in events if e.event_type == _E.EVENT_TYPE_WORKFLOW_TASK_COMPLETED)


def activity_seconds(events: list[HistoryEvent]) -> dict[str, tuple[float, float]]:
    """Per task queue, the summed (schedule-to-start, start-to-close) seconds of the
    activities in a history."""
    scheduled: dict[int, tuple[str, float]] = {}
    started: dict[int, float] = {}
    totals: dict[str, tuple[float, float]] = {}
    for event in events:
        at = event.event_time.ToDatetime().timestamp()
        if event.event_type == _E.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
            queue = event.activity_task_scheduled_event_attributes.task_queue.name
            scheduled[event.event_id] = (queue, at)
        elif event.event_type == _E.EVENT_TYPE_ACTIVITY_TASK_STARTED:
            sid = event.activity_task_started_event_attributes.scheduled_event_id
            started[sid] = at
            queue, since = scheduled[sid]
            queued, running = totals.get(queue, (0.0, 0.0))
            totals[queue] = (queued + at - since, running)
        elif event.event_type == _E.EVENT_TYPE_ACTIVITY_TASK_COMPLETED:
            sid = event.activity_task_completed_event_attributes.scheduled_event_id
            queue, _ = scheduled[sid]
            queued, running = totals.get(queue, (0.0, 0.0))
            totals[queue] = (queued, running + at - started.get(sid, at))
    return totals
