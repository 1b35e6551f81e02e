"""The dashboards and alerts against what a running revsync really exports: the local stack
books a quote and parks one, with a real Prometheus (Debian's `prometheus`, installed by
.ci/run) scraping its metrics endpoint; every Temporal SDK metric a panel or an alert reads is
exported with the labels it uses, and every dashboard query over metrics the run recorded
returns data from Prometheus."""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from revsync.metrics import build_runtime
from revsync.settings import Settings
from sandbox.faults import FaultRule
from tests.deploy import promql
from tests.deploy.test_grafana import DASHBOARDS, dashboard, queries
from tests.deploy.test_prometheus import rules
from tests.e2e.stack import free_port, running_stack
from tests.e2e.test_failures_e2e import inject, parked_at_crm_write_back
from tests.e2e.test_quote_to_cash_e2e import deliver, finished, new_quote

pytestmark = pytest.mark.e2e


def every_query() -> list[tuple[str, str]]:
    found = [where_expr for path in DASHBOARDS for where_expr in queries(dashboard(path))]
    return found + [(f"alert {rule['alert']}", rule["expr"]) for rule in rules()]


@contextmanager
def prometheus(target: str, tmp_path: Path) -> Iterator[str]:
    binary = shutil.which("prometheus")
    assert binary is not None, "prometheus is not installed: `apt-get install prometheus`"
    port = free_port()
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "scrape_configs": [
            {"job_name": "revsync-worker-orchestration", "static_configs": [{"targets": [target]}]}
        ],
    }
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
    process = subprocess.Popen(
        [
            binary,
            f"--config.file={tmp_path / 'prometheus.yml'}",
            f"--storage.tsdb.path={tmp_path / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(timeout=30)


async def query(http: httpx.AsyncClient, base: str, expr: str) -> list[Any]:
    response = await http.get(f"{base}/api/v1/query", params={"query": expr})
    body = response.json()
    assert body["status"] == "success", (expr, body)
    result = body["data"]["result"]
    assert isinstance(result, list)
    return result


async def until(check: Any) -> None:
    """Poll ``check`` (a Prometheus query) twice a second for up to a minute."""
    for _ in range(120):
        if await check():
            return
        await asyncio.sleep(0.5)
    raise AssertionError("Prometheus never had the samples")


async def test_every_panel_and_alert_reads_exported_metrics_and_the_dashboards_show_data(
    tmp_path: Path,
):
    port = free_port()
    runtime = build_runtime(Settings(metrics_port=port))
    async with httpx.AsyncClient(timeout=10) as http:
        with prometheus(f"127.0.0.1:{port}", tmp_path) as base:

            async def scraped_twice() -> bool:
                with_samples = await query(http, base, "count_over_time(up[1m]) >= 2")
                return bool(with_samples)

            async with running_stack(runtime) as stack:
                await until(scraped_twice)
                booked = await new_quote(stack, "0015e00000AcmeUS1")
                inject(stack, FaultRule(vendor="stripe", operation="*", status=503, times=1))
                assert (await deliver(stack, booked)).status_code == 202
                await finished(stack, booked["quote_id"])
                await parked_at_crm_write_back(stack)
                text = (await http.get(f"http://127.0.0.1:{port}/metrics")).text

                # Every SDK metric (and its labels) a panel or an alert reads is on the endpoint.
                scraped = promql.scraped_catalogue(text)
                sdk = [
                    (where, expr)
                    for where, expr in every_query()
                    if any(n.startswith("temporal_") for n in promql.parse(expr).names())
                ]
                assert len(sdk) >= 8
                assert promql.all_problems(sdk, scraped | promql.business_catalogue()) == []

                # Every dashboard query over series this run recorded returns data (a query
                # on, say, rejected event deliveries has nothing to show after this run).
                async def latest_scraped() -> bool:
                    found = await query(http, base, "revsync_quotes_parked_total")
                    return bool(found)

                await until(latest_scraped)
                await asyncio.sleep(3)  # a few more scrapes: rate() needs two samples
                recorded = set(scraped)
                checked, empty = 0, []
                for path in DASHBOARDS:
                    for where, expr in queries(dashboard(path)):
                        selectors = promql.parse(expr).selectors
                        if not {s.name for s in selectors} <= recorded | {"up"}:
                            continue
                        if not all([await query(http, base, s.text) for s in selectors]):
                            continue
                        checked += 1
                        if not await query(http, base, expr):
                            empty.append(where)
                assert empty == []
                assert checked >= 12, json.dumps(sorted(recorded))
