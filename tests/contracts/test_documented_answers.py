"""What the gateway answers is what its OpenAPI document says it answers (issue 17).

Schemathesis, run against the live gateway (tests/fuzz), found every ops route answering
statuses the document did not list: 401 without or with an unknown token, 403 for a holder
without the role, 404 for an unknown id, 400 for a body FastAPI cannot parse; and the CSV
answers of the shadow and reconciliation reports documented as JSON only. These tests hold
the answers to the document in-process, one defect each.
"""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest
from jsonschema import Draft202012Validator

from revsync.gateway.app import create_app
from revsync.settings import Settings
from tests.gateway.test_intake import RecordingClient
from tests.staff import secret_settings, token_of


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory):
    folder = tmp_path_factory.mktemp("answers")
    settings = Settings(
        **secret_settings(),
        reconcile_report_dir=folder / "reports",
        shadow_store=folder / "shadow.sqlite3",
    )
    return create_app(settings, RecordingClient())  # type: ignore[arg-type]


@pytest.fixture
async def http(app):
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://gw") as client:
            yield client


def template_of(document: dict[str, Any], path: str, method: str) -> str:
    """The document's path template that ``path`` is an instance of."""
    for template, item in document["paths"].items():
        pattern = "^" + re.sub(r"\{[^}]+\}", "[^/]+", template) + "$"
        if method in item and re.match(pattern, path):
            return str(template)
    raise AssertionError(f"{method.upper()} {path} is not in the document")


def assert_documented(document: dict[str, Any], answer: httpx.Response) -> None:
    """``answer``'s status, media type and body are the ones its operation documents."""
    method = answer.request.method.lower()
    template = template_of(document, answer.request.url.path, method)
    responses = document["paths"][template][method]["responses"]
    where = f"{method.upper()} {template} answered {answer.status_code}"
    assert str(answer.status_code) in responses, f"{where}, undocumented"
    media = answer.headers["content-type"].split(";")[0]
    content = responses[str(answer.status_code)].get("content", {})
    assert media in content, f"{where} as {media}; documented: {sorted(content)}"
    schema = content[media].get("schema")
    if media == "application/json" and schema is not None:
        rooted = {**schema, "components": document["components"]}
        errors = list(Draft202012Validator(rooted).iter_errors(answer.json()))
        assert not errors, f"{where}: {errors[0].message}"
    if answer.status_code == 401 and template.startswith(("/v1/ops/", "/codec/")):
        assert answer.headers["WWW-Authenticate"] == "Bearer", where
        assert "WWW-Authenticate" in responses["401"].get("headers", {}), where


def ops_operations(document: dict[str, Any]) -> list[tuple[str, str]]:
    return [
        (method, path.replace("{", "x-").replace("}", ""))
        for path, item in document["paths"].items()
        if path.startswith("/v1/ops/")
        for method in item
    ]


async def test_every_ops_route_documents_its_401(app, http) -> None:
    document = app.openapi()
    operations = ops_operations(document)
    assert len(operations) >= 20
    for method, path in operations:
        for headers in ({}, {"Authorization": "Bearer rs_unknown"}):
            answer = await http.request(method, path, headers=headers, json={})
            assert answer.status_code == 401, (method, path, answer.text)
            assert_documented(document, answer)


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("post", "/v1/ops/quotes/Q-1/approve", {}),
        ("post", "/v1/ops/quotes/Q-1/resolve", {"action": "retry", "note": "why"}),
        ("post", "/v1/ops/shadow/compare", None),
        ("post", "/v1/ops/adoptions/adopt-1/close", None),
        ("post", "/v1/ops/customers/acct-1/resolve", {"action": "retry", "note": "why"}),
    ],
)
async def test_a_missing_role_is_a_documented_403(app, http, method, path, body) -> None:
    reader = {"Authorization": f"Bearer {token_of('Rita Reader')}"}
    answer = await http.request(method, path, headers=reader, json=body)
    assert answer.status_code == 403, answer.text
    assert_documented(app.openapi(), answer)


async def test_an_unknown_report_is_a_documented_404(app, http) -> None:
    staff = {"Authorization": f"Bearer {token_of('Oscar Ops')}"}
    for path in ("/v1/ops/reconciliation/runs/nope", "/v1/ops/reconciliation/runs/nope/rows"):
        answer = await http.get(path, headers=staff)
        assert answer.status_code == 404, answer.text
        assert_documented(app.openapi(), answer)


async def test_an_unparsable_body_is_a_documented_400(app, http) -> None:
    staff = {"Authorization": f"Bearer {token_of('Sam Manager')}"}
    answer = await http.post(
        "/v1/ops/quotes/Q-1/approve",
        headers=staff | {"Content-Type": "application/json"},
        content=b"\xff{}",  # not UTF-8: FastAPI cannot decode it
    )
    assert answer.status_code == 400, answer.text
    assert_documented(app.openapi(), answer)


async def test_the_shadow_reports_csv_is_documented(app, http) -> None:
    staff = {"Authorization": f"Bearer {token_of('Oscar Ops')}"}
    for path in ("/v1/ops/shadow/report", "/v1/ops/shadow/sagas/q2c-Q-1"):
        answer = await http.get(path, headers=staff, params={"format": "csv"})
        assert answer.status_code == 200, answer.text
        assert answer.headers["content-type"].startswith("text/csv")
        assert_documented(app.openapi(), answer)


async def test_webhook_refusals_document_their_body(app, http) -> None:
    for path in ("/v1/webhooks/cpq/quote-accepted", "/v1/webhooks/stripe"):
        answer = await http.post(path, content=b"{}")
        assert answer.status_code == 401, answer.text
        assert_documented(app.openapi(), answer)


@pytest.mark.parametrize("workflow_id", ["q2c-𝲚§", 'q2c-a"b', "q2c-a%0D%0ASet-Cookie:x=1"])
async def test_a_shadow_csv_of_any_workflow_id_is_answered(app, http, workflow_id) -> None:
    """Schemathesis found GET /v1/ops/shadow/sagas/<id>?format=csv answering 500 (and
    resetting the connection) for an id outside Latin-1 or holding a line break: the id went
    into Content-Disposition as it was. The header now keeps it only percent-encoded."""
    staff = {"Authorization": f"Bearer {token_of('Oscar Ops')}"}
    answer = await http.get(
        f"/v1/ops/shadow/sagas/{workflow_id}", headers=staff, params={"format": "csv"}
    )
    assert answer.status_code == 200, answer.text
    disposition = answer.headers["content-disposition"]
    assert disposition.isascii() and "\n" not in disposition and "Set-Cookie" not in answer.headers
    assert disposition.count('"') == 2, disposition
    assert_documented(app.openapi(), answer)


async def test_the_codec_server_is_in_the_document(app, http) -> None:
    """Schemathesis could not reach the codec server: the gateway mounts it at /codec and the
    document had none of its operations. Each of its answers is now documented."""
    payloads = {"payloads": [{"metadata": {"encoding": "anNvbi9wbGFpbg=="}, "data": "MQ=="}]}
    for path in ("/codec/decode", "/codec/encode", "/codec/default/decode"):
        for name, status in ((None, 401), ("Oscar Ops", 403), ("Rita Reader", 200)):
            headers = {} if name is None else {"Authorization": f"Bearer {token_of(name)}"}
            answer = await http.post(path, headers=headers, json=payloads)
            assert answer.status_code == status, (path, name, answer.text)
            assert_documented(app.openapi(), answer)
        answer = await http.post(
            path, headers={"Authorization": f"Bearer {token_of('Rita')}"}, content=b"[]"
        )
        assert answer.status_code == 400, answer.text
        assert_documented(app.openapi(), answer)


@pytest.mark.parametrize(
    ("path", "staff", "note"),
    [
        *[
            (path, "Oscar Ops", note)
            for path in (
                "/v1/ops/quotes/Q-1/resolve",
                "/v1/ops/invoices/in_1/resolve",
                "/v1/ops/customers/acct-1/resolve",
            )
            for note in ("\n", " \t ")
        ],
        ("/v1/ops/customers/acct-1/keep-separate", "Dana Steward", "\n"),
        # A steward's note is at most 255 characters in the domain, 2000 in the body.
        ("/v1/ops/customers/acct-1/keep-separate", "Dana Steward", "x" * 300),
    ],
)
async def test_a_note_the_domain_refuses_is_a_422_not_a_500(app, http, path, staff, note) -> None:
    """Schemathesis found the resolve routes answering 500 for a note of white space: the
    body's model took it (1 to 2000 characters), the domain's request (a trimmed note; a
    steward's at most 255 characters) did not, and its ValidationError went unhandled. Now
    a documented 422."""
    body = {"action": "retry", "note": note}
    if path.endswith("keep-separate"):
        body = {"candidate": "acct-2", "note": note}
    answer = await http.post(
        path, headers={"Authorization": f"Bearer {token_of(staff)}"}, json=body
    )
    assert answer.status_code == 422, answer.text
    assert answer.json()["detail"][0]["loc"][:2] == ["body", "note"], answer.text
    assert_documented(app.openapi(), answer)


async def test_a_codec_namespace_that_is_no_segment_is_a_documented_404(app, http) -> None:
    """Schemathesis sent POST /codec/<namespace>/encode with a line break in the namespace:
    the mount does not route it, a 404 the document did not list."""
    reader = {"Authorization": f"Bearer {token_of('Rita Reader')}"}
    answer = await http.post("/codec/a%0Ab/encode", headers=reader, json={"payloads": []})
    assert answer.status_code == 404, answer.text
    assert_documented(app.openapi(), answer)
