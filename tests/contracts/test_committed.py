"""The committed contracts under schemas/: current, never broken within a version, served by
the gateway as committed; and the guard itself, on model changes made for the test."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import BaseModel

from domain.events import QuoteBooked, QuoteBookedEvent
from domain.quote import Quote
from revsync import schemas
from revsync.compat import Compatibility
from revsync.gateway.app import create_app
from revsync.schemas import CONTRACTS, SCHEMAS_DIR, Contract, Finding, check, write
from revsync.settings import Settings
from tests.staff import secret_settings


@pytest.fixture(scope="module")
def findings() -> list[Finding]:
    return check()


def test_the_committed_schemas_are_what_the_models_generate(findings: list[Finding]):
    drift = [str(f) for f in findings if not f.breaking]
    assert drift == [], (
        "schemas/ does not match the models: run `make schemas` and commit schemas/\n"
        + "\n".join(drift)
    )


def test_no_contract_changes_incompatibly_within_its_version(findings: list[Finding]):
    broken = [str(f) for f in findings if f.breaking]
    assert broken == [], "\n".join(broken)


def test_every_contract_has_its_own_file():
    paths = [c.path for c in CONTRACTS]
    assert len(set(paths)) == len(paths)
    assert {p.split("/")[0] for p in paths} == {"events", "webhooks", "openapi"}


# -- the guard, on changes made here ----------------------------------------------------------


class BookedV1(BaseModel):
    quote_id: str
    amount: Decimal
    erp_order_id: str


class BookedAdditive(BookedV1):
    crm_order_id: str | None = None


class BookedBroken(BaseModel):
    quote_id: str
    amount: int


def contract(model: type[BaseModel], version: int = 1, name: str = "events/t.booked") -> Contract:
    return schemas._model_contract(
        name,
        version,
        model,
        mode="serialization",
        compatibility=Compatibility.FULL,
        description="a contract made for this test",
    )


def test_a_breaking_change_without_a_version_bump_fails_naming_contract_and_change(
    tmp_path: Path,
):
    assert write(tmp_path, [contract(BookedV1)]) == (["events/t.booked.v1.json"], [])
    before = (tmp_path / "events/t.booked.v1.json").read_text()

    (finding,) = check(tmp_path, [contract(BookedBroken)])
    assert finding.breaking
    assert finding.path == "events/t.booked.v1.json"
    message = str(finding)
    assert "events/t.booked v1" in message
    assert "$.amount: type changed from string to integer" in message
    assert "$.erp_order_id: property removed" in message

    # and `make schemas` refuses to paper over it
    written, refused = write(tmp_path, [contract(BookedBroken)])
    assert (written, [f.path for f in refused]) == ([], ["events/t.booked.v1.json"])
    assert (tmp_path / "events/t.booked.v1.json").read_text() == before


def test_an_additive_change_passes_once_regenerated(tmp_path: Path):
    write(tmp_path, [contract(BookedV1)])
    (stale,) = check(tmp_path, [contract(BookedAdditive)])
    assert not stale.breaking
    assert "run `make schemas`" in str(stale)
    assert write(tmp_path, [contract(BookedAdditive)]) == (["events/t.booked.v1.json"], [])
    assert check(tmp_path, [contract(BookedAdditive)]) == []


def test_a_version_bump_adds_a_file_and_keeps_the_old_one(tmp_path: Path):
    write(tmp_path, [contract(BookedV1)])
    bumped = contract(BookedBroken, version=2)
    (missing,) = check(tmp_path, [bumped])
    assert "events/t.booked.v2.json: missing" in str(missing)
    assert write(tmp_path, [bumped]) == (["events/t.booked.v2.json"], [])
    assert check(tmp_path, [bumped]) == []
    assert (tmp_path / "events/t.booked.v1.json").exists()


def test_a_file_that_belongs_to_no_contract_is_reported(tmp_path: Path):
    write(tmp_path, [contract(BookedV1)])
    (tmp_path / "events/t.shipped.v1.json").write_text("{}")
    (tmp_path / "events/notes.json").write_text("{}")
    assert sorted(str(f) for f in check(tmp_path, [contract(BookedV1)])) == [
        "schemas/events/notes.json: not named <name>.v<version>.json",
        "schemas/events/t.shipped.v1.json: belongs to no contract in revsync.schemas",
    ]


class QuoteBookedWithoutNulls(QuoteBooked):
    amount: float  # type: ignore[assignment]
    crm_order_id: str


class QuoteBookedEventChanged(QuoteBookedEvent):
    data: QuoteBookedWithoutNulls


class QuoteWithRegion(Quote):
    region: str


@pytest.mark.parametrize(
    ("name", "changed", "mode", "compatibility", "expected"),
    [
        (
            "events/quote.booked",
            QuoteBookedEventChanged,
            "serialization",
            Compatibility.FULL,
            [
                "$.data.amount: type changed from string to number",
                "$.data.crm_order_id: type changed from string|null to string",
                "$.data.crm_order_id: property newly required",
            ],
        ),
        (
            "webhooks/cpq.quote-accepted",
            QuoteWithRegion,
            "validation",
            Compatibility.BACKWARD,
            ["$.region: property newly required"],
        ),
    ],
)
def test_the_guard_catches_real_model_changes_against_the_committed_files(
    name: str, changed: Any, mode: Any, compatibility: Compatibility, expected: list[str]
):
    current = next(c for c in CONTRACTS if c.name == name)
    edited = schemas._model_contract(
        name, current.version, changed, mode=mode, compatibility=compatibility, description="x"
    )
    (finding,) = [f for f in check(SCHEMAS_DIR, [edited]) if f.breaking]
    for change in expected:
        assert change in str(finding)


# -- what the gateway serves -----------------------------------------------------------------


def committed(path: str) -> Any:
    return json.loads((SCHEMAS_DIR / path).read_text())


@pytest.fixture
async def gateway():
    app = create_app(Settings(**secret_settings()), object())  # type: ignore[arg-type]
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://gw") as http:
        yield http


async def test_the_gateway_serves_the_committed_openapi_document(gateway: httpx.AsyncClient):
    document = (await gateway.get("/v1/openapi.json")).json()
    assert document == committed("openapi/gateway.v1.json")
    assert document["info"]["version"] == "1"
    old = await gateway.get("/openapi.json")
    assert (old.status_code, old.headers["location"]) == (308, "/v1/openapi.json")
    deprecated = {
        path for path, item in document["paths"].items() if item.get("post", {}).get("deprecated")
    }
    assert deprecated == {p.removeprefix("/v1") for p in document["paths"] if "/webhooks/" in p}


async def test_the_gateway_serves_every_committed_schema(gateway: httpx.AsyncClient):
    index = (await gateway.get("/v1/schemas")).json()["schemas"]
    assert [(s["name"], s["version"]) for s in index] == [(c.name, c.version) for c in CONTRACTS]
    for entry in index:
        response = await gateway.get(entry["url"])
        assert response.headers["content-type"] == "application/schema+json"
        assert response.json() == committed(entry["url"].removeprefix("/v1/schemas/"))
    missing = await gateway.get("/v1/schemas/events/quote.shipped.v1.json")
    assert missing.status_code == 404


def test_the_command_checks_and_writes(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    assert schemas.main(["--check"]) == 0
    assert schemas.main(["--check", "--dir", str(tmp_path)]) == 1
    assert "schemas/events/quote.booked.v1.json: missing: run `make schemas`" in (
        capsys.readouterr().err
    )
    assert schemas.main(["--dir", str(tmp_path)]) == 0
    assert sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*.json")) == sorted(
        c.path for c in CONTRACTS
    )
    assert schemas.main(["--check", "--dir", str(tmp_path)]) == 0


def test_revsync_schemas_is_a_cli_command():
    from typer.testing import CliRunner

    from revsync.cli import app

    result = CliRunner().invoke(app, ["schemas", "--check"])
    assert result.exit_code == 0, result.output
    assert f"{len(CONTRACTS)} contracts match schemas/" in result.output
