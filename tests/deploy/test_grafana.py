"""Grafana as docker-compose.yml runs it: the datasource and the dashboards are provisioned
from deploy/grafana, each dashboard has the model fields Grafana needs (uid, schemaVersion,
datasource references, unique panel ids), every query reads only metrics revsync exports with
the labels it uses, and every link to the Temporal Web UI opens one of the runbook's views."""

from __future__ import annotations

import json
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy import promql
from tests.test_docs_links import views

ROOT = Path(__file__).resolve().parents[2]
GRAFANA = ROOT / "deploy/grafana"
DASHBOARDS = sorted((GRAFANA / "dashboards").glob("*.json"))


def load_yaml(path: Path) -> dict[str, Any]:
    loaded = yaml.safe_load(path.read_text())
    assert isinstance(loaded, dict)
    return loaded


def dashboard(path: Path) -> dict[str, Any]:
    loaded = json.loads(path.read_text())
    assert isinstance(loaded, dict)
    return loaded


def panels(model: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for panel in model["panels"]:
        yield panel
        yield from panel.get("panels", [])


def queries(model: dict[str, Any]) -> Iterator[tuple[str, str]]:
    for panel in panels(model):
        for target in panel.get("targets", []):
            yield f"{model['uid']} / {panel['title']} / {target['refId']}", target["expr"]


def datasource_uid() -> str:
    (source,) = load_yaml(GRAFANA / "provisioning/datasources/prometheus.yml")["datasources"]
    assert source["type"] == "prometheus"
    assert source["url"] == "http://prometheus:9090"
    return str(source["uid"])


def test_both_dashboards_are_committed():
    titles = {dashboard(path)["title"] for path in DASHBOARDS}
    assert titles == {"revsync: Revenue operations", "revsync: Integrations"}


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.name)
def test_a_dashboard_has_the_model_fields_grafana_needs(path: Path):
    model = dashboard(path)
    uid = model["uid"]
    assert isinstance(uid, str) and 0 < len(uid) <= 40 and uid.replace("-", "").isalnum()
    assert isinstance(model["schemaVersion"], int) and model["schemaVersion"] >= 36
    assert model["title"] and model["panels"]
    ids = [panel["id"] for panel in panels(model)]
    assert all(isinstance(i, int) for i in ids)
    assert len(ids) == len(set(ids)), "panel ids repeat"
    source = datasource_uid()
    for panel in panels(model):
        grid = panel["gridPos"]
        assert {"h", "w", "x", "y"} <= set(grid) and grid["x"] + grid["w"] <= 24, panel["title"]
        if panel["type"] in {"row", "text"}:
            assert "targets" not in panel
            continue
        assert panel["datasource"] == {"type": "prometheus", "uid": source}, panel["title"]
        refs = [target["refId"] for target in panel["targets"]]
        assert refs and len(refs) == len(set(refs)), panel["title"]
        for target in panel["targets"]:
            assert target["datasource"] == panel["datasource"], panel["title"]
            assert target["expr"].strip(), panel["title"]
        assert panel.get("description"), f"{panel['title']}: say what it means"


def test_uids_are_unique_across_dashboards():
    uids = [dashboard(path)["uid"] for path in DASHBOARDS]
    assert len(uids) == len(set(uids))


def test_every_business_metric_a_panel_reads_is_exported_with_its_labels():
    catalogue = promql.business_catalogue()
    business = [
        (where, expr)
        for path in DASHBOARDS
        for where, expr in queries(dashboard(path))
        if not any(name.startswith("temporal_") for name in promql.parse(expr).names())
    ]
    assert len(business) >= 10
    assert promql.all_problems(business, catalogue) == []


def test_every_web_ui_link_opens_a_runbook_view():
    known = set(views().values())
    linked = 0
    for path in DASHBOARDS:
        model = dashboard(path)
        variables = {v["name"]: v for v in model["templating"]["list"]}
        assert variables["temporal_ui"]["query"].endswith("/namespaces/default")
        for panel in panels(model):
            urls = [link["url"] for link in panel.get("links", [])]
            urls += [
                part.split(")")[0]
                for part in panel.get("options", {}).get("content", "").split("](")[1:]
            ]
            for url in urls:
                assert url.startswith("${temporal_ui}/workflows?query="), url
                query = urllib.parse.unquote(url.partition("?query=")[2])
                assert query in known, f"{panel['title']}: {query!r} is not a runbook view"
                linked += 1
    assert linked >= 10


def test_compose_provisions_grafana_and_prometheus_from_the_repository():
    compose = load_yaml(ROOT / "docker-compose.yml")["services"]
    grafana = compose["grafana"]
    mounts = {m.split(":")[0]: m.split(":")[1] for m in grafana["volumes"]}
    assert mounts["./deploy/grafana/provisioning"] == "/etc/grafana/provisioning"
    (provider,) = load_yaml(GRAFANA / "provisioning/dashboards/revsync.yml")["providers"]
    assert mounts["./deploy/grafana/dashboards"] == provider["options"]["path"]
    home = grafana["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert Path(home).name in {path.name for path in DASHBOARDS}
    assert "${GRAFANA_ADMIN_PASSWORD:?" in grafana["environment"]["GF_SECURITY_ADMIN_PASSWORD"]
    prometheus = compose["prometheus"]
    assert "./deploy/prometheus:/etc/prometheus:ro" in prometheus["volumes"]
    assert "--config.file=/etc/prometheus/prometheus.yml" in prometheus["command"]
