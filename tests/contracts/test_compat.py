"""The compatibility checker on its own: breaking and compatible changes, per direction."""

from __future__ import annotations

from typing import Any

import pytest

from revsync.compat import (
    Change,
    Compatibility,
    breaking_changes,
    openapi_breaking_changes,
)

BACKWARD, FORWARD, FULL = Compatibility.BACKWARD, Compatibility.FORWARD, Compatibility.FULL


def obj(required: list[str] | None = None, **properties: Any) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "object", "properties": properties}
    if required:
        schema["required"] = required
    return schema


STRING = {"type": "string"}
INTEGER = {"type": "integer"}
NULLABLE_STRING = {"anyOf": [{"type": "string"}, {"type": "null"}]}


def whats(changes: list[Change]) -> list[str]:
    return [str(change) for change in changes]


@pytest.mark.parametrize("compatibility", list(Compatibility))
def test_an_unchanged_schema_has_no_breaking_change(compatibility: Compatibility):
    schema = obj(["a"], a=STRING, b={"type": "array", "items": INTEGER})
    assert breaking_changes(schema, schema, compatibility) == []


@pytest.mark.parametrize("compatibility", list(Compatibility))
def test_removing_a_property_breaks_in_every_direction(compatibility: Compatibility):
    old = obj(["a"], a=STRING, b=STRING)
    new = obj(["a"], a=STRING)
    assert whats(breaking_changes(old, new, compatibility)) == ["$.b: property removed"]


@pytest.mark.parametrize("compatibility", list(Compatibility))
def test_adding_an_optional_property_is_compatible(compatibility: Compatibility):
    old = obj(["a"], a=STRING)
    new = obj(["a"], a=STRING, note=NULLABLE_STRING)
    assert breaking_changes(old, new, compatibility) == []


def test_a_newly_required_property_breaks_senders_and_event_history_not_readers():
    old = obj(["a"], a=STRING, b=STRING)
    new = obj(["a", "b"], a=STRING, b=STRING)
    expected = ["$.b: property newly required"]
    assert whats(breaking_changes(old, new, BACKWARD)) == expected
    assert whats(breaking_changes(old, new, FULL)) == expected
    assert breaking_changes(old, new, FORWARD) == []


def test_a_property_no_longer_required_breaks_readers_not_senders():
    old = obj(["a", "b"], a=STRING, b=STRING)
    new = obj(["a"], a=STRING, b=STRING)
    assert whats(breaking_changes(old, new, FORWARD)) == ["$.b: property no longer required"]
    assert breaking_changes(old, new, BACKWARD) == []


@pytest.mark.parametrize("compatibility", list(Compatibility))
def test_a_changed_type_breaks(compatibility: Compatibility):
    old = obj(["n"], n=STRING)
    new = obj(["n"], n=INTEGER)
    assert whats(breaking_changes(old, new, compatibility)) == [
        "$.n: type changed from string to integer"
    ]


def test_integer_to_number_widens_for_senders_and_narrows_back_for_readers():
    old, new = obj(n=INTEGER), obj(n={"type": "number"})
    assert breaking_changes(old, new, BACKWARD) == []
    assert whats(breaking_changes(old, new, FORWARD)) == [
        "$.n: type changed from integer to number"
    ]
    assert breaking_changes(new, old, FORWARD) == []


def test_a_value_that_may_now_be_null_breaks_readers_only():
    old, new = obj(["s"], s=STRING), obj(["s"], s=NULLABLE_STRING)
    assert breaking_changes(old, new, BACKWARD) == []
    assert whats(breaking_changes(old, new, FORWARD)) == [
        "$.s: type changed from string to string|null"
    ]
    # and the other way round: refusing null breaks whoever sent it
    assert whats(breaking_changes(new, old, BACKWARD)) == [
        "$.s: type changed from string|null to string"
    ]


def test_a_narrowed_enum_breaks_senders_a_widened_one_breaks_readers():
    three = {"type": "string", "enum": ["month", "quarter", "year"]}
    two = {"type": "string", "enum": ["month", "year"]}
    assert whats(breaking_changes(obj(i=three), obj(i=two), BACKWARD)) == [
        '$.i: enum narrowed: no longer accepts "quarter"'
    ]
    assert breaking_changes(obj(i=three), obj(i=two), FORWARD) == []
    assert whats(breaking_changes(obj(i=two), obj(i=three), FORWARD)) == [
        '$.i: enum widened: now also "quarter"'
    ]
    assert breaking_changes(obj(i=two), obj(i=three), BACKWARD) == []
    # events are read and validated both ways: either change needs a new version
    assert breaking_changes(obj(i=three), obj(i=two), FULL)
    assert breaking_changes(obj(i=two), obj(i=three), FULL)


def test_a_const_is_a_one_value_enum():
    old = {"const": "com.revsync.quote.booked.v1", "type": "string"}
    new = {"const": "com.revsync.quote.booked.v2", "type": "string"}
    assert whats(breaking_changes(old, new, FULL)) == [
        '$: enum narrowed: no longer accepts "com.revsync.quote.booked.v1"',
        '$: enum widened: now also "com.revsync.quote.booked.v2"',
    ]


def test_bounds_tightened_break_senders_loosened_break_readers():
    old = obj(note={"type": "string", "maxLength": 500})
    tighter = obj(note={"type": "string", "maxLength": 200})
    looser = obj(note={"type": "string"})
    assert whats(breaking_changes(old, tighter, BACKWARD)) == [
        "$.note: maxLength tightened from 500 to 200"
    ]
    assert breaking_changes(old, looser, BACKWARD) == []
    assert whats(breaking_changes(old, looser, FORWARD)) == [
        "$.note: maxLength loosened from 500 to none"
    ]
    assert breaking_changes(old, tighter, FORWARD) == []


def test_a_new_pattern_breaks_senders():
    old = obj(sku=STRING)
    new = obj(sku={"type": "string", "pattern": "^[A-Z0-9]+$"})
    assert whats(breaking_changes(old, new, BACKWARD)) == [
        '$.sku: pattern changed from none to "^[A-Z0-9]+$"'
    ]
    assert breaking_changes(old, new, FORWARD) == []


def test_refusing_unknown_properties_breaks_senders():
    old = obj(a=STRING)
    new = obj(a=STRING) | {"additionalProperties": False}
    assert whats(breaking_changes(old, new, BACKWARD)) == ["$: other properties are now refused"]
    # readers holding a closed schema break on any new property
    assert whats(breaking_changes(new, obj(a=STRING, b=STRING), FORWARD)) == [
        "$.b: property added where other properties were refused",
        "$: other properties are now allowed",
    ]


def test_annotations_never_matter():
    old = obj(["a"], a={"type": "string", "title": "A", "description": "old words"})
    new = obj(["a"], a={"type": "string", "title": "Renamed", "examples": ["x"], "default": "x"})
    for compatibility in Compatibility:
        assert breaking_changes(old, new, compatibility) == []


def test_refs_and_nesting_are_followed_and_named_by_path():
    def quote(line: dict[str, Any]) -> dict[str, Any]:
        return {
            "$defs": {"Line": line},
            "type": "object",
            "properties": {"lines": {"type": "array", "items": {"$ref": "#/$defs/Line"}}},
        }

    old = quote(obj(["sku"], sku=STRING, qty=INTEGER))
    new = quote(obj(["sku", "qty"], sku=STRING, qty=INTEGER))
    assert whats(breaking_changes(old, new, BACKWARD)) == ["$.lines[].qty: property newly required"]
    inlined = {
        "type": "object",
        "properties": {"lines": {"type": "array", "items": obj(["sku"], sku=STRING, qty=INTEGER)}},
    }
    assert breaking_changes(old, inlined, FULL) == []


def test_a_nullable_reference_compares_the_referenced_model():
    def doc(interval: dict[str, Any]) -> dict[str, Any]:
        return {
            "$defs": {"Interval": interval},
            "type": "object",
            "properties": {"interval": {"anyOf": [{"$ref": "#/$defs/Interval"}, {"type": "null"}]}},
        }

    old = doc({"type": "string", "enum": ["month", "year"]})
    new = doc({"type": "string", "enum": ["month"]})
    assert whats(breaking_changes(old, new, BACKWARD)) == [
        '$.interval: enum narrowed: no longer accepts "year"'
    ]


def test_recursive_models_terminate():
    def tree(extra: dict[str, Any]) -> dict[str, Any]:
        node = obj(children={"type": "array", "items": {"$ref": "#/$defs/Node"}}, **extra)
        return {"$defs": {"Node": node}, "$ref": "#/$defs/Node"}

    assert breaking_changes(tree({}), tree({"label": STRING}), FULL) == []
    assert whats(breaking_changes(tree({"label": STRING}), tree({}), FULL)) == [
        "$.label: property removed"
    ]


def test_union_members_are_matched_by_title():
    card = obj(["last4"], last4=STRING) | {"title": "Card"}
    bank = obj(["iban"], iban=STRING) | {"title": "Bank"}
    wallet = obj(["id"], id=STRING) | {"title": "Wallet"}
    old = {"anyOf": [card, bank]}
    assert breaking_changes(old, {"anyOf": [card, bank, wallet]}, BACKWARD) == []
    assert whats(breaking_changes(old, {"anyOf": [card]}, BACKWARD)) == [
        "$: type changed from object:Card|object:Bank to object"
    ]
    changed_bank = obj(["iban", "bic"], iban=STRING, bic=STRING) | {"title": "Bank"}
    assert whats(breaking_changes(old, {"anyOf": [card, changed_bank]}, BACKWARD)) == [
        "$.bic: property newly required"
    ]


# -- OpenAPI -----------------------------------------------------------------------------


def api(paths: dict[str, Any], components: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "openapi": "3.1.0",
        "info": {"title": "t", "version": "1"},
        "paths": paths,
        "components": {"schemas": components or {}},
    }


def post(body: dict[str, Any] | None = None, response: dict[str, Any] | None = None):
    operation: dict[str, Any] = {"responses": {"200": {"description": "ok"}}}
    if body is not None:
        operation["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": body}},
        }
    if response is not None:
        operation["responses"]["200"]["content"] = {"application/json": {"schema": response}}
    return {"post": operation}


def test_openapi_removed_path_and_removed_method_break():
    old = api({"/v1/a": post() | {"get": {"responses": {}}}, "/v1/b": post()})
    new = api({"/v1/a": post()})
    assert whats(openapi_breaking_changes(old, new)) == [
        "GET /v1/a: operation removed",
        "/v1/b: path removed",
    ]


def test_openapi_added_paths_methods_and_optional_fields_are_compatible():
    body = {"$ref": "#/components/schemas/Body"}
    old = api({"/v1/a": post(body)}, {"Body": obj(["a"], a=STRING)})
    new = api(
        {"/v1/a": post(body) | {"get": {"responses": {}}}, "/v1/b": post()},
        {"Body": obj(["a"], a=STRING, note=STRING)},
    )
    assert openapi_breaking_changes(old, new) == []


def test_openapi_request_bodies_are_compared_backward_and_responses_forward():
    body = {"$ref": "#/components/schemas/Body"}
    old = api({"/v1/a": post(body, obj(["id"], id=STRING))}, {"Body": obj(["a"], a=STRING)})
    new = api(
        {"/v1/a": post(body, obj(id=STRING))},
        {"Body": obj(["a", "b"], a=STRING, b=STRING)},
    )
    assert whats(openapi_breaking_changes(old, new)) == [
        "POST /v1/a request body.b: property newly required",
        "POST /v1/a response 200.id: property no longer required",
    ]


def test_openapi_a_newly_required_parameter_breaks():
    param = {"name": "limit", "in": "query", "schema": INTEGER}
    old = api({"/v1/a": {"get": {"parameters": [param], "responses": {}}}})
    new = api({"/v1/a": {"get": {"parameters": [param | {"required": True}], "responses": {}}}})
    assert whats(openapi_breaking_changes(old, new)) == [
        "GET /v1/a: query parameter limit is newly required"
    ]


def test_a_model_that_becomes_one_member_of_a_union_is_still_accepted():
    card = obj(["last4"], last4=STRING) | {"title": "Card"}
    bank = obj(["iban"], iban=STRING) | {"title": "Bank"}
    assert breaking_changes(card, {"anyOf": [card, bank]}, BACKWARD) == []
    assert whats(breaking_changes(card, {"anyOf": [card, bank]}, FORWARD)) == [
        "$: type changed from object to object:Card|object:Bank"
    ]
