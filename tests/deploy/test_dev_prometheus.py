"""`revsync dev` runs Prometheus with the production scrape jobs and alert rules when metrics
are on and a `prometheus` binary is on the PATH, prints where it answers, and otherwise says
how to get one and runs without it. The end-to-end run is in tests/e2e/test_dev_stack.py."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import yaml

from revsync import devstack
from revsync.devstack import DevStackOptions, stack_processes
from revsync.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
PRODUCTION = yaml.safe_load((ROOT / "deploy/prometheus/prometheus.yml").read_text())


def options(tmp_path: Path, metrics_port: int | None, prometheus: str | None) -> DevStackOptions:
    settings = Settings(metrics_port=metrics_port, data_dir=tmp_path, prometheus_port=9190)
    return DevStackOptions(settings=settings, scale={"crm": 2}, prometheus=prometheus)


def test_prometheus_runs_last_on_its_port_when_metrics_are_on_and_it_is_installed(
    tmp_path: Path,
):
    specs = stack_processes(options(tmp_path, 9100, "/usr/bin/prometheus"))
    assert specs[-1].name == "prometheus"
    assert specs[-1].listens_on == ("127.0.0.1", 9190)
    assert specs[-1].argv[0] == "/usr/bin/prometheus"
    assert f"--config.file={tmp_path / 'prometheus' / 'prometheus.yml'}" in specs[-1].argv
    assert "--web.listen-address=127.0.0.1:9190" in specs[-1].argv
    assert specs[-1].metrics_port is None
    listing = devstack.prometheus_listing(Settings(prometheus_port=9190), specs)
    assert listing.startswith("http://127.0.0.1:9190")


def test_without_the_binary_or_without_metrics_no_prometheus_and_the_banner_says_why(
    tmp_path: Path,
):
    not_installed = options(tmp_path, 9100, None)
    specs = stack_processes(not_installed)
    assert "prometheus" not in {spec.name for spec in specs}
    said = devstack.prometheus_listing(not_installed.settings, specs)
    assert "apt-get install prometheus" in said and said.startswith("off")

    metrics_off = options(tmp_path, None, "/usr/bin/prometheus")
    specs = stack_processes(metrics_off)
    assert "prometheus" not in {spec.name for spec in specs}
    assert "REVSYNC_METRICS_PORT" in devstack.prometheus_listing(metrics_off.settings, specs)


def test_the_dev_config_has_the_production_jobs_interval_and_rules(tmp_path: Path):
    chosen = options(tmp_path, 9100, "/usr/bin/prometheus")
    specs = stack_processes(chosen)
    path = devstack.write_prometheus_config(chosen.settings, specs)
    config = json.loads(path.read_text())
    assert config["global"] == PRODUCTION["global"]
    assert config["rule_files"] == [
        str(ROOT / "deploy/prometheus" / name) for name in PRODUCTION["rule_files"]
    ]
    jobs = {
        job["job_name"]: job["static_configs"][0]["targets"] for job in config["scrape_configs"]
    }
    production_jobs = {job["job_name"] for job in PRODUCTION["scrape_configs"]}
    assert set(jobs) == production_jobs - {"temporal-server"}
    # Every process that serves metrics is a target, each replica in its queue's job.
    assert jobs["revsync-gateway"] == ["127.0.0.1:9100"]
    assert jobs["revsync-worker-crm"] == ["127.0.0.1:9102", "127.0.0.1:9103"]
    served = {f"127.0.0.1:{s.metrics_port}" for s in specs if s.metrics_port is not None}
    assert {t for found in jobs.values() for t in found} == served


def test_promtool_accepts_the_dev_config_and_its_rules(tmp_path: Path):
    chosen = options(tmp_path, 9100, "/usr/bin/prometheus")
    path = devstack.write_prometheus_config(chosen.settings, stack_processes(chosen))
    promtool = shutil.which("promtool")
    assert promtool is not None, "promtool is not installed: `apt-get install prometheus`"
    checked = subprocess.run(
        [promtool, "check", "config", str(path)], capture_output=True, text=True, timeout=60
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    alerts = yaml.safe_load((ROOT / "deploy/prometheus/alerts.yml").read_text())
    count = sum(len(group["rules"]) for group in alerts["groups"])
    assert f"SUCCESS: {count} rules found" in checked.stdout + checked.stderr
