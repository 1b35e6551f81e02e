"""What a PromQL expression reads (metric names, the labels it matches and groups by) and what
revsync exports (the business metrics of ``revsync.metrics`` with the labels the SDK adds),
for the tests that hold the alert rules and the Grafana dashboards to the real metrics."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from revsync import metrics

_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'')
_RANGE = re.compile(r"\[[^\]]*\]")
_GROUPING = re.compile(
    r"\b(by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)", re.IGNORECASE
)
_SELECTOR = re.compile(r"([A-Za-z_:][A-Za-z0-9_:]*)\s*(\{[^}]*\})?(\s*\()?")
_MATCHER = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)\s*(?:=~|!~|!=|=)\s*\"")
_KEYWORDS = {"and", "or", "unless", "bool", "offset", "inf", "nan", "group_left", "group_right"}
# Labels every scraped series carries: Prometheus's target labels.
TARGET_LABELS = frozenset({"job", "instance"})
# Labels the Temporal SDK adds to what a workflow, an activity or the gateway records.
SDK_LABELS = frozenset(
    {"service_name", "namespace", "task_queue", "workflow_type", "activity_type"}
)


@dataclass
class Selector:
    name: str
    labels: set[str] = field(default_factory=set)
    # The selector as written (``name{matchers}``), to ask Prometheus for its series.
    text: str = ""


@dataclass
class Query:
    """A parsed expression: its selectors and the labels it groups or joins on."""

    selectors: list[Selector]
    grouping: set[str]

    def names(self) -> set[str]:
        return {s.name for s in self.selectors}


def parse(expr: str) -> Query:
    text = re.sub(r"\$\{?\w+\}?", "", expr)  # Grafana variables ($__rate_interval, ...)
    text = _RANGE.sub("", text)
    grouping: set[str] = set()
    for _, labels in _GROUPING.findall(text):
        grouping |= {label.strip() for label in labels.split(",") if label.strip()}
    text = _GROUPING.sub(" ", text)
    selectors: list[Selector] = []
    # Strings blanked to the same length, so that a match's span is the selector as written.
    blanked = _STRING.sub(lambda m: '"' + "x" * (len(m.group(0)) - 2) + '"', text)
    for match in _SELECTOR.finditer(blanked):
        name, braces, call = match.groups()
        if call or name.lower() in _KEYWORDS:
            continue
        labels = set(_MATCHER.findall(braces or ""))
        written = text[match.start(1) : match.end(2) if braces else match.end(1)]
        selectors.append(Selector(name, labels, written))
    # Bare matchers: {__name__=...} is not used by revsync's queries.
    return Query(selectors, grouping)


def _series_labels(metric: metrics.Metric) -> dict[str, frozenset[str]]:
    base = frozenset(metric.labels) | SDK_LABELS | TARGET_LABELS
    if metric.kind == "counter":
        return {metric.exposed: base}
    return {
        f"{metric.name}_bucket": base | {"le"},
        f"{metric.name}_sum": base,
        f"{metric.name}_count": base,
    }


def business_catalogue() -> dict[str, frozenset[str]]:
    """Every business series revsync exports, with the labels it may carry."""
    found: dict[str, frozenset[str]] = {"up": TARGET_LABELS}
    for metric in metrics.ALL_METRICS:
        found |= _series_labels(metric)
    return found


def scraped_catalogue(text: str) -> dict[str, frozenset[str]]:
    """Series names and labels of a Prometheus text scrape (plus the target labels)."""
    found: dict[str, set[str]] = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        name, _, rest = line.partition("{")
        name = name.split()[0]
        labels = set(re.findall(r'(\w+)="', rest)) if rest else set()
        found.setdefault(name, set()).update(labels | TARGET_LABELS)
    return {name: frozenset(labels) for name, labels in found.items()}


def problems(expr: str, catalogue: dict[str, frozenset[str]], where: str) -> list[str]:
    """What ``expr`` reads that ``catalogue`` does not export (names, matched labels, and
    grouping labels no selected series carries)."""
    query = parse(expr)
    found: list[str] = []
    if not query.selectors:
        found.append(f"{where}: no metric in {expr!r}")
    carried: set[str] = set()
    for selector in query.selectors:
        labels = catalogue.get(selector.name)
        if labels is None:
            found.append(f"{where}: {selector.name} is not exported")
            continue
        carried |= labels
        for label in sorted(selector.labels - labels):
            found.append(f"{where}: {selector.name} has no label {label}")
    for label in sorted(query.grouping - carried):
        found.append(f"{where}: grouped by {label}, which none of {sorted(query.names())} has")
    return found


def all_problems(
    exprs: Iterable[tuple[str, str]], catalogue: dict[str, frozenset[str]]
) -> list[str]:
    return [p for where, expr in exprs for p in problems(expr, catalogue, where)]
