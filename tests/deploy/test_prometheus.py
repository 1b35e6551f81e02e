"""Prometheus for the compose stack and `revsync dev`: deploy/prometheus/prometheus.yml scrapes
the gateway and every worker service, alerts.yml passes promtool and a unit test per alert,
every alert links a runbook section that exists, and reads only metrics revsync exports with
the labels it uses. promtool is Debian's `prometheus` package, installed by .ci/run: a missing
promtool fails these tests, it does not skip them."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy import promql
from tests.test_docs_links import anchors

ROOT = Path(__file__).resolve().parents[2]
PROMETHEUS = ROOT / "deploy/prometheus"


def load(path: Path) -> dict[str, Any]:
    loaded = yaml.safe_load(path.read_text())
    assert isinstance(loaded, dict)
    return loaded


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    binary = shutil.which("promtool")
    assert binary is not None, (
        "promtool is not installed: `apt-get install prometheus` (Debian), as .ci/run does"
    )
    return subprocess.run(
        [binary, *args], cwd=PROMETHEUS, capture_output=True, text=True, timeout=120
    )


def rules() -> list[dict[str, Any]]:
    return [rule for group in load(PROMETHEUS / "alerts.yml")["groups"] for rule in group["rules"]]


def test_promtool_accepts_the_scrape_config_and_its_rules():
    checked = promtool("check", "config", "prometheus.yml")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "SUCCESS" in checked.stdout + checked.stderr


def test_promtool_accepts_the_rules():
    checked = promtool("check", "rules", "alerts.yml")
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_every_alert_passes_its_promtool_unit_tests():
    tested = promtool("test", "rules", "alerts_test.yml")
    assert tested.returncode == 0, tested.stdout + tested.stderr


def test_a_wrong_expectation_fails_promtool(tmp_path: Path):
    """The unit tests can fail: a test expecting a label the rule does not give is refused."""
    tests = load(PROMETHEUS / "alerts_test.yml")
    tests["rule_files"] = [str(PROMETHEUS / "alerts.yml")]
    first = tests["tests"][0]["alert_rule_test"]
    firing = next(case for case in first if case["exp_alerts"])
    firing["exp_alerts"][0]["exp_labels"]["team"] = "nobody"
    broken = tmp_path / "broken_test.yml"
    broken.write_text(yaml.safe_dump(tests))
    assert promtool("test", "rules", str(broken)).returncode != 0


def test_every_alert_has_a_unit_test_that_sees_it_fire_and_stay_quiet():
    tests = load(PROMETHEUS / "alerts_test.yml")["tests"]
    firing: set[str] = set()
    quiet: set[str] = set()
    for test in tests:
        for case in test.get("alert_rule_test", []):
            (firing if case["exp_alerts"] else quiet).add(case["alertname"])
    names = {rule["alert"] for rule in rules()}
    assert names - firing == set(), "alerts never seen firing in alerts_test.yml"
    assert names - quiet == set(), "alerts never seen quiet in alerts_test.yml"


def test_every_alert_names_its_team_and_a_runbook_section_that_exists():
    for rule in rules():
        assert rule["labels"]["team"] in {"finance-ops", "on-call"}, rule["alert"]
        assert rule["labels"]["severity"] in {"warning", "critical"}, rule["alert"]
        url = rule["annotations"]["runbook_url"]
        page, _, anchor = url.partition("#")
        assert page.startswith("docs/runbook-") and page.endswith(".md"), url
        assert anchor in anchors(ROOT / page), f"{rule['alert']}: no #{anchor} in {page}"


def test_the_alerts_cover_what_the_issue_asks_for():
    names = {rule["alert"] for rule in rules()}
    assert {
        "RevsyncSlaBreached",
        "RevsyncOrdersParked",
        "RevsyncVendorQuotaExhausted",
        "RevsyncEventDeliveryBacklog",
        "RevsyncWorkerQueueWithoutPollers",
    } <= names


def test_every_business_metric_an_alert_reads_is_exported_with_its_labels():
    catalogue = promql.business_catalogue()
    business = [
        (rule["alert"], rule["expr"])
        for rule in rules()
        if not any(name.startswith("temporal_") for name in promql.parse(rule["expr"]).names())
    ]
    assert business, "no business alert checked"
    assert promql.all_problems(business, catalogue) == []


def test_the_check_catches_an_unknown_metric_and_an_unknown_label():
    catalogue = promql.business_catalogue()
    assert promql.problems("sum(revsync_orders_total)", catalogue, "x") == [
        "x: revsync_orders_total is not exported"
    ]
    assert promql.problems(
        'sum by (currency) (revsync_quotes_booked_total{vendor="stripe"})', catalogue, "x"
    ) == [
        "x: revsync_quotes_booked_total has no label vendor",
        "x: grouped by currency, which none of ['revsync_quotes_booked_total'] has",
    ]


# -- the scrape config against docker-compose.yml -------------------------------------------


def revsync_services() -> dict[str, dict[str, Any]]:
    """The compose services that serve /metrics: the gateway and every worker."""
    services = load(ROOT / "docker-compose.yml")["services"]
    found = {}
    for name, service in services.items():
        command = service.get("command") or []
        if command and command[0] in {"gateway", "worker"}:
            found[name] = service
    return found


def test_every_worker_service_and_the_gateway_is_scraped_on_its_metrics_port():
    compose_text = (ROOT / "docker-compose.yml").read_text()
    assert "REVSYNC_METRICS_PORT: ${REVSYNC_METRICS_PORT:-9100}" in compose_text
    scraped: dict[str, str] = {}
    for job in load(PROMETHEUS / "prometheus.yml")["scrape_configs"]:
        for sd in job.get("dns_sd_configs", []):
            assert sd["type"] == "A" and sd["port"] == 9100, job["job_name"]
            for name in sd["names"]:
                scraped[name] = job["job_name"]
    services = revsync_services()
    assert {name for name in services if name.startswith("worker-")} == {
        f"worker-{queue}" for queue in ("orchestration", "crm", "billing", "erp", "events")
    }
    assert set(services) <= set(scraped), "a revsync service Prometheus does not scrape"
    # A service's DNS name resolves to every replica, so each is a target of its own.
    for name in services:
        assert scraped[name] == f"revsync-{name}"


@pytest.mark.parametrize("queue", ["orchestration", "crm", "billing", "erp", "events"])
def test_a_queue_without_any_worker_is_alerted(queue: str):
    (rule,) = [r for r in rules() if r["alert"] == "RevsyncWorkerQueueWithoutPollers"]
    assert f'absent(up{{job="revsync-worker-{queue}"}})' in rule["expr"]
