"""Is a contract change breaking? A pure comparison of two JSON Schemas, or two OpenAPI
documents, that names each change someone on the other side could trip on.

Who is on the other side decides what breaks (:class:`Compatibility`):

- ``BACKWARD``: revsync *reads* what others write (webhook payloads, request bodies). The new
  schema must accept everything the old one accepted: a newly required property, a narrowed
  enum or type, a tightened bound or a new pattern breaks senders.
- ``FORWARD``: revsync *writes* and readers hold the old schema (API responses). Everything the
  new schema allows, the old one must accept: a property no longer always present, a widened
  enum or type, a loosened bound breaks readers.
- ``FULL``: both (business events: one schema file describes every event ever published
  under that version, and readers validate new events with old copies of it).

Whatever the direction, removing a property is breaking: someone relied on it.

Understood: ``$ref`` into the same document, ``anyOf``/``oneOf`` (unions, nullable),
``allOf`` (merged), ``type`` (one or a list; ``integer`` is a ``number``), ``enum``/``const``,
``properties``/``required``/``additionalProperties``, ``items``/``prefixItems`` and the
usual bounds (``minimum``, ``maxLength``, ``pattern``, ``format``...). Annotations (``title``,
``description``, ``default``, ``examples``) never matter.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

Schema = Mapping[str, Any]

HTTP_METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
LOWER_BOUNDS = ("minimum", "exclusiveMinimum", "minLength", "minItems", "minProperties")
UPPER_BOUNDS = ("maximum", "exclusiveMaximum", "maxLength", "maxItems", "maxProperties")
EXACT_CONSTRAINTS = ("pattern", "format", "multipleOf")
ANY = "any"


class Compatibility(StrEnum):
    BACKWARD = "backward"
    FORWARD = "forward"
    FULL = "full"


@dataclass(frozen=True)
class Change:
    """One breaking change: where (a path in the document) and what."""

    where: str
    what: str

    def __str__(self) -> str:
        return f"{self.where}: {self.what}"


def breaking_changes(
    old: Schema,
    new: Schema,
    compatibility: Compatibility,
    *,
    old_root: Schema | None = None,
    new_root: Schema | None = None,
    where: str = "$",
) -> list[Change]:
    """The breaking changes from ``old`` to ``new`` for readers/writers as ``compatibility``
    says; empty when the change is compatible. ``old_root``/``new_root`` are the documents
    ``$ref`` resolves in (default: the schemas themselves)."""
    walk = _Walk(
        old_root if old_root is not None else old,
        new_root if new_root is not None else new,
        backward=compatibility in (Compatibility.BACKWARD, Compatibility.FULL),
        forward=compatibility in (Compatibility.FORWARD, Compatibility.FULL),
    )
    walk.compare(old, new, where)
    return walk.changes


def openapi_breaking_changes(old: Schema, new: Schema) -> list[Change]:
    """Breaking changes between two OpenAPI 3.1 documents: a removed path or operation, a
    newly required parameter or body, a request body the new document refuses (backward)
    and a response the old one would not have described (forward)."""
    changes: list[Change] = []
    new_paths = new.get("paths", {})
    for path, old_item in old.get("paths", {}).items():
        new_item = new_paths.get(path)
        if new_item is None:
            changes.append(Change(path, "path removed"))
            continue
        for method in HTTP_METHODS:
            if method not in old_item:
                continue
            operation = f"{method.upper()} {path}"
            if method not in new_item:
                changes.append(Change(operation, "operation removed"))
                continue
            changes += _operation_changes(operation, old_item[method], new_item[method], old, new)
    return changes


def _operation_changes(
    operation: str, old: Schema, new: Schema, old_doc: Schema, new_doc: Schema
) -> list[Change]:
    changes: list[Change] = []

    def params(op: Schema, doc: Schema) -> dict[tuple[str, str], Schema]:
        resolved = (_resolve(p, doc) for p in op.get("parameters", []))
        return {(p["in"], p["name"]): p for p in resolved}

    old_params, new_params = params(old, old_doc), params(new, new_doc)
    for (where_in, name), param in new_params.items():
        previous = old_params.get((where_in, name))
        if param.get("required") and not (previous and previous.get("required")):
            changes.append(Change(operation, f"{where_in} parameter {name} is newly required"))
        if previous is not None and "schema" in previous and "schema" in param:
            changes += breaking_changes(
                previous["schema"],
                param["schema"],
                Compatibility.BACKWARD,
                old_root=old_doc,
                new_root=new_doc,
                where=f"{operation} {where_in} parameter {name}",
            )

    old_body = _resolve(old.get("requestBody", {}), old_doc)
    new_body = _resolve(new.get("requestBody", {}), new_doc)
    if new_body.get("required") and not old_body.get("required"):
        changes.append(Change(operation, "request body is newly required"))
    new_content = new_body.get("content", {})
    for media, old_media in old_body.get("content", {}).items():
        if media not in new_content:
            changes.append(Change(operation, f"no longer accepts {media} request bodies"))
        elif "schema" in old_media and "schema" in new_content[media]:
            changes += breaking_changes(
                old_media["schema"],
                new_content[media]["schema"],
                Compatibility.BACKWARD,
                old_root=old_doc,
                new_root=new_doc,
                where=f"{operation} request body",
            )

    new_responses = new.get("responses", {})
    for status, old_response in old.get("responses", {}).items():
        if status not in new_responses:
            continue
        old_content = _resolve(old_response, old_doc).get("content", {})
        new_content = _resolve(new_responses[status], new_doc).get("content", {})
        for media in old_content.keys() & new_content.keys():
            if "schema" in old_content[media] and "schema" in new_content[media]:
                changes += breaking_changes(
                    old_content[media]["schema"],
                    new_content[media]["schema"],
                    Compatibility.FORWARD,
                    old_root=old_doc,
                    new_root=new_doc,
                    where=f"{operation} response {status}",
                )
    return changes


# -- the walk ------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Variant:
    """One alternative of a schema, for one JSON type (``any`` when unconstrained)."""

    key: str
    json_type: str
    schema: Schema
    ref: str | None


@dataclass
class _Walk:
    old_root: Schema
    new_root: Schema
    backward: bool
    forward: bool
    changes: list[Change] = field(default_factory=list)
    seen: set[tuple[str, str]] = field(default_factory=set)

    def flag(self, where: str, what: str) -> None:
        self.changes.append(Change(where, what))

    def compare(self, old: Schema, new: Schema, where: str) -> None:
        old_variants = _variants(old, self.old_root)
        new_variants = _variants(new, self.new_root)
        pairs: list[tuple[_Variant, _Variant]] = []
        uncovered_old = uncovered_new = False
        for variant in old_variants:  # what the old schema allowed, does the new accept it?
            cover = _covering(variant, new_variants)
            uncovered_old = uncovered_old or cover is None
            if cover is not None:
                pairs.append((variant, cover))
        for variant in new_variants:  # what the new schema allows, did the old accept it?
            cover = _covering(variant, old_variants)
            uncovered_new = uncovered_new or cover is None
            if cover is not None and not any(new is variant for _, new in pairs):
                pairs.append((cover, variant))
        if (self.backward and uncovered_old) or (self.forward and uncovered_new):
            before = "|".join(v.key for v in old_variants)
            after = "|".join(v.key for v in new_variants)
            self.flag(where, f"type changed from {before} to {after}")
        for old_variant, new_variant in pairs:
            if ANY in (old_variant.json_type, new_variant.json_type):
                continue
            if old_variant.ref is not None and new_variant.ref is not None:
                pair = (old_variant.ref, new_variant.ref)
                if pair in self.seen:  # compared already; recursive models end here
                    continue
                self.seen.add(pair)
            self.compare_variant(old_variant, new_variant, where)

    def compare_variant(self, old_variant: _Variant, new_variant: _Variant, where: str) -> None:
        old, new = old_variant.schema, new_variant.schema
        self.compare_values(old, new, old_variant.json_type, where)
        self.compare_constraints(old, new, where)
        if old_variant.json_type == "object":
            self.compare_objects(old, new, where)
        elif old_variant.json_type == "array":
            if "items" in old and "items" in new:
                self.compare(old["items"], new["items"], f"{where}[]")
            for index, (before, after) in enumerate(
                zip(old.get("prefixItems", []), new.get("prefixItems", []), strict=False)
            ):
                self.compare(before, after, f"{where}[{index}]")

    def compare_values(self, old: Schema, new: Schema, json_type: str, where: str) -> None:
        before, after = _allowed_values(old, json_type), _allowed_values(new, json_type)
        if self.backward and after is not None:
            if before is None:
                self.flag(where, f"now restricted to {_show(after)}")
            elif before - after:
                self.flag(where, f"enum narrowed: no longer accepts {_show(before - after)}")
        if self.forward and before is not None:
            if after is None:
                self.flag(where, f"no longer restricted to {_show(before)}")
            elif after - before:
                self.flag(where, f"enum widened: now also {_show(after - before)}")

    def compare_constraints(self, old: Schema, new: Schema, where: str) -> None:
        for key in (*LOWER_BOUNDS, *UPPER_BOUNDS):
            before, after = old.get(key), new.get(key)
            if before == after:
                continue
            lower = key in LOWER_BOUNDS
            tightened = after is not None and (
                before is None or (after > before if lower else after < before)
            )
            if tightened and self.backward:
                self.flag(where, f"{key} tightened from {_bound(before)} to {_bound(after)}")
            elif not tightened and self.forward:
                self.flag(where, f"{key} loosened from {_bound(before)} to {_bound(after)}")
        for key in EXACT_CONSTRAINTS:
            before, after = old.get(key), new.get(key)
            if before == after:
                continue
            if (self.backward and after is not None) or (self.forward and before is not None):
                self.flag(where, f"{key} changed from {_bound(before)} to {_bound(after)}")

    def compare_objects(self, old: Schema, new: Schema, where: str) -> None:
        old_props: Mapping[str, Schema] = old.get("properties", {})
        new_props: Mapping[str, Schema] = new.get("properties", {})
        old_required, new_required = set(old.get("required", [])), set(new.get("required", []))
        for name in old_props:
            if name not in new_props:
                self.flag(f"{where}.{name}", "property removed")
        if self.backward:
            for name in sorted(new_required - old_required):
                self.flag(f"{where}.{name}", "property newly required")
        if self.forward:
            for name in sorted((old_required - new_required) & new_props.keys()):
                self.flag(f"{where}.{name}", "property no longer required")
        old_extra, new_extra = old.get("additionalProperties"), new.get("additionalProperties")
        if self.forward and old_extra is False:
            for name in sorted(new_props.keys() - old_props.keys()):
                self.flag(f"{where}.{name}", "property added where other properties were refused")
        if self.backward and new_extra is False and old_extra is not False:
            self.flag(where, "other properties are now refused")
        if self.forward and old_extra is False and new_extra is not False:
            self.flag(where, "other properties are now allowed")
        if isinstance(old_extra, Mapping) and isinstance(new_extra, Mapping):
            self.compare(old_extra, new_extra, f"{where}.*")
        for name in old_props.keys() & new_props.keys():
            self.compare(old_props[name], new_props[name], f"{where}.{name}")


# -- helpers -------------------------------------------------------------------------------


def _pointer(root: Schema, ref: str) -> Schema:
    if not ref.startswith("#/"):
        raise ValueError(f"only local $ref is supported, not {ref!r}")
    target: Any = root
    for part in ref[2:].split("/"):
        target = target[part.replace("~1", "/").replace("~0", "~")]
    if not isinstance(target, Mapping):
        raise ValueError(f"$ref {ref!r} does not point at a schema")
    return target


def _resolve(schema: Schema, root: Schema) -> Schema:
    """``schema`` with ``$ref`` followed (keywords beside it kept) and ``allOf`` merged."""
    followed: set[str] = set()
    while "$ref" in schema:
        ref = schema["$ref"]
        if ref in followed:
            raise ValueError(f"$ref {ref!r} refers to itself")
        followed.add(ref)
        beside = {k: v for k, v in schema.items() if k != "$ref"}
        schema = {**_pointer(root, ref), **beside}
    if "allOf" in schema:
        merged: dict[str, Any] = {k: v for k, v in schema.items() if k != "allOf"}
        for part in schema["allOf"]:
            part = _resolve(part, root)
            properties = {**merged.get("properties", {}), **part.get("properties", {})}
            required = [*merged.get("required", []), *part.get("required", [])]
            merged = {**merged, **part}
            if properties:
                merged["properties"] = properties
            if required:
                merged["required"] = sorted(set(required))
        schema = merged
    return schema


def _last_ref(schema: Schema) -> str | None:
    return schema.get("$ref") if isinstance(schema.get("$ref"), str) else None


def _variants(schema: Schema, root: Schema) -> list[_Variant]:
    """The alternatives of ``schema``: one per branch of a union and per listed type, keyed
    by JSON type, or by ``type:title`` where several branches share a type."""
    found = list(_branches(schema, root, None))
    counts: dict[str, int] = {}
    for json_type, _, _ in found:
        counts[json_type] = counts.get(json_type, 0) + 1
    variants = []
    for index, (json_type, branch, ref) in enumerate(found):
        key = json_type
        if counts[json_type] > 1:
            key = f"{json_type}:{branch.get('title') or ref or index}"
        variants.append(_Variant(key, json_type, branch, ref))
    return variants


def _branches(
    schema: Schema, root: Schema, ref: str | None
) -> Iterator[tuple[str, Schema, str | None]]:
    ref = _last_ref(schema) or ref
    schema = _resolve(schema, root)
    union = schema.get("anyOf") or schema.get("oneOf")
    if union:
        beside = {k: v for k, v in schema.items() if k not in ("anyOf", "oneOf", "discriminator")}
        for branch in union:
            yield from _branches({**beside, **branch}, root, _last_ref(branch))
        return
    for json_type in _types(schema):
        yield json_type, schema, ref


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    return "array" if isinstance(value, list) else "object"


def _types(schema: Schema) -> list[str]:
    declared = schema.get("type")
    if isinstance(declared, str):
        return [declared]
    if isinstance(declared, list):
        return list(declared)
    if "const" in schema:
        return [_json_type(schema["const"])]
    if "enum" in schema:
        return sorted({_json_type(v) for v in schema["enum"]})
    if {"properties", "additionalProperties", "required"} & schema.keys():
        return ["object"]
    if {"items", "prefixItems"} & schema.keys():
        return ["array"]
    return [ANY]


def _covering(variant: _Variant, others: list[_Variant]) -> _Variant | None:
    """The alternative in ``others`` that accepts every value ``variant`` allows, if any:
    the same key; else the one of the same JSON type and title; else the only one of the same
    type, unless either is one of several union members of that type; else a ``number`` for
    an ``integer``; else an unconstrained one."""
    for other in others:
        if other.key == variant.key:
            return other
    same_type = [v for v in others if v.json_type == variant.json_type]
    titled = [v for v in same_type if v.schema.get("title") == variant.schema.get("title")]
    if len(titled) == 1:
        return titled[0]
    if len(same_type) == 1 and ":" not in variant.key + same_type[0].key:
        return same_type[0]
    if variant.json_type == "integer":
        for other in others:
            if other.json_type == "number":
                return other
    for other in others:
        if other.json_type == ANY:
            return other
    return None


def _allowed_values(schema: Schema, json_type: str) -> set[str] | None:
    """The values a schema is restricted to (``const``/``enum``), of one JSON type, as JSON
    text; None when any value of the type is allowed."""
    if "const" in schema:
        values = [schema["const"]]
    elif "enum" in schema:
        values = list(schema["enum"])
    else:
        return None
    return {
        json.dumps(v, sort_keys=True)
        for v in values
        if _json_type(v) == json_type or (json_type == "number" and _json_type(v) == "integer")
    }


def _show(values: set[str]) -> str:
    return ", ".join(sorted(values))


def _bound(value: Any) -> str:
    return "none" if value is None else json.dumps(value)
