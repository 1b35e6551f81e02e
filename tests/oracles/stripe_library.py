"""Reading Stripe's own Python library (``stripe`` 10.12.0, API version 2024-06-20) as an
oracle: its typed request parameters (the ``...Params`` TypedDicts), its form encoder, its
typed resources (class annotations) and its webhook signature check.

Nothing here is revsync's reading of Stripe: the types come from the library, and the only
logic is walking them.
"""

from __future__ import annotations

import functools
import importlib
import inspect
import re
import sys
import types
import typing
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any, ForwardRef, Literal, NotRequired, Required, Union, get_args, get_origin

import stripe
import typing_extensions
from stripe._encode import _api_encode
from stripe._object_classes import OBJECT_CLASSES
from stripe._request_options import RequestOptions

# Request options (api_key, idempotency_key, ...) travel as headers, never as parameters.
REQUEST_OPTIONS = frozenset(RequestOptions.__annotations__)

# Names the library's annotations refer to: typing's and every public stripe class.
_NAMESPACE: dict[str, Any] = {
    **vars(typing),
    **{name: getattr(stripe, name) for name in dir(stripe) if not name.startswith("_")},
}


@functools.cache
def _module_namespace(module_name: str) -> dict[str, Any]:
    """A library module's globals plus the names it imports only for type checking
    (``from stripe._discount import Discount as DiscountResource``)."""
    module = sys.modules[module_name]
    names = dict(vars(module))
    for origin, name, alias in re.findall(
        r"^\s*from ([\w.]+) import (\w+)(?: as (\w+))?\s*$", inspect.getsource(module), re.M
    ):
        try:
            names.setdefault(alias or name, getattr(importlib.import_module(origin), name))
        except (ImportError, AttributeError):
            continue
    return names


def resolve(annotation: Any, owner: type | None = None) -> Any:
    """``annotation`` with forward references (``"Subscription.CreateParamsItem"``,
    ``"Literal['']|Dict[str, str]"``) evaluated in the library's namespace."""
    if isinstance(annotation, str):
        annotation = ForwardRef(annotation)
    if isinstance(annotation, ForwardRef):
        namespace = dict(_NAMESPACE)
        if owner is not None:
            namespace.update(_module_namespace(owner.__module__))
        return eval(annotation.__forward_arg__, namespace)
    return annotation


def _union_args(tp: Any) -> tuple[Any, ...] | None:
    if get_origin(tp) is Union or isinstance(tp, types.UnionType):
        return get_args(tp)
    return None


# --- request parameters -------------------------------------------------------------------


def nest(pairs: Iterable[tuple[str, str]]) -> dict[str, Any]:
    """Form pairs in Stripe's bracket notation as the nested value the library would have
    encoded them from: ``a[b][0][c]=x`` -> ``{"a": {"b": [{"c": "x"}]}}``."""
    root: dict[str, Any] = {}
    for key, value in pairs:
        head, *rest = re.findall(r"[^\[\]]+|\[\]", key)
        path = [head, *rest]
        node = root
        for depth, part in enumerate(path):
            last = depth == len(path) - 1
            if part == "[]":
                part = str(len(node))
            if last:
                node[part] = value
            else:
                node = node.setdefault(part, {})

    def lists(value: Any) -> Any:
        if isinstance(value, dict):
            if value and all(k.isdigit() for k in value):
                return [lists(value[k]) for k in sorted(value, key=int)]
            return {k: lists(v) for k, v in value.items()}
        return value

    return {k: lists(v) for k, v in root.items()}


def library_encoding(params: Mapping[str, Any]) -> list[tuple[str, str]]:
    """The form pairs the library sends for ``params`` (its own encoder)."""
    return [(key, str(value)) for key, value in _api_encode(dict(params))]


def param_problems(value: Any, annotation: Any, where: str, owner: type) -> list[str]:
    """Where ``value`` (strings, lists, dicts: a decoded form) does not fit the library's
    parameter type ``annotation``; empty when it fits."""
    tp = resolve(annotation, owner)
    origin = get_origin(tp)
    if origin in (NotRequired, Required):
        return param_problems(value, get_args(tp)[0], where, owner)
    union = _union_args(tp)
    if union is not None:
        tries = [param_problems(value, arg, where, owner) for arg in union]
        if any(not problems for problems in tries):
            return []
        return [f"{where}: {value!r} fits none of {tp}"]
    if origin is Literal:
        allowed = [str(a).lower() if isinstance(a, bool) else str(a) for a in get_args(tp)]
        return [] if value in allowed else [f"{where}: {value!r} is not one of {allowed}"]
    if typing_extensions.is_typeddict(tp):
        if not isinstance(value, dict):
            return [f"{where}: expected an object ({tp.__qualname__})"]
        fields = {k: v for k, v in tp.__annotations__.items() if k not in REQUEST_OPTIONS}
        problems = [
            f"{where}[{key}]: no such parameter in {tp.__qualname__}"
            for key in value
            if key not in fields
        ]
        problems += [
            f"{where}[{key}]: required by {tp.__qualname__}"
            for key in tp.__required_keys__ - REQUEST_OPTIONS
            if key not in value
        ]
        for key, item in value.items():
            if key in fields:
                label = f"{where}[{key}]" if where else key
                problems += param_problems(item, fields[key], label, tp)
        return problems
    if origin in (list, typing.List):  # noqa: UP006 (the library's own spelling)
        if not isinstance(value, list):
            return [f"{where}: expected a list"]
        (item_type,) = get_args(tp)
        return [
            problem
            for index, item in enumerate(value)
            for problem in param_problems(item, item_type, f"{where}[{index}]", owner)
        ]
    if origin in (dict, typing.Dict, Mapping):  # noqa: UP006
        if not isinstance(value, dict):
            return [f"{where}: expected a hash"]
        _, item_type = get_args(tp)
        return [
            problem
            for key, item in value.items()
            for problem in param_problems(item, item_type, f"{where}[{key}]", owner)
        ]
    if not isinstance(value, str):
        return [f"{where}: expected a value, got {type(value).__name__}"]
    if tp is str or tp is Any:
        return []
    if tp is bool:
        return [] if value in ("true", "false") else [f"{where}: {value!r} is not a boolean"]
    if tp is int:
        return [] if re.fullmatch(r"-?\d+", value) else [f"{where}: {value!r} is not an integer"]
    if tp is float:
        try:
            Decimal(value)
        except InvalidOperation:
            return [f"{where}: {value!r} is not a number"]
        return []
    return [f"{where}: cannot check {tp!r}"]


# --- resources ----------------------------------------------------------------------------

# Keys of list and search envelopes Stripe's API reference shows (the examples of "List all
# invoices", "Search customers") that the library's ListObject / SearchResultObject leave
# unannotated; and ``object``, which every object has (its OBJECT_NAME).
ENVELOPE_KEYS = {
    "list": frozenset({"object", "data", "has_more", "url", "total_count"}),
    "search_result": frozenset({"object", "data", "has_more", "next_page", "url"}),
}


def resource_class(object_name: str) -> type:
    return OBJECT_CLASSES[object_name]


def _classes(tp: Any, owner: type) -> list[Any]:
    """The concrete types an annotation of ``owner`` may hold: Optional, Union and
    ExpandableField unwrapped, ``ListObject[T]`` as ``ListObject``, ``List[T]`` as
    ``("list-of", T)``."""
    tp = resolve(tp, owner)
    union = _union_args(tp)
    if union is not None:
        return [c for arg in union for c in _classes(arg, owner)]
    origin = get_origin(tp)
    if origin is not None and origin is not Literal:
        if isinstance(origin, type) and issubclass(origin, stripe.ListObject):
            return [stripe.ListObject]
        if origin in (list, typing.List):  # noqa: UP006
            return [("list-of", c) for c in _classes(get_args(tp)[0], owner)]
        return [origin]
    return [tp]


def _field_classes(cls: type, name: str) -> list[Any]:
    for klass in cls.__mro__:
        annotations = vars(klass).get("__annotations__", {})
        if name in annotations:
            return _classes(annotations[name], klass)
    return []


def field_known(cls: type, path: str) -> bool:
    """Whether ``path`` (``address.city``, ``discount_amounts[].amount``) names a field of
    the library's resource ``cls``, following its nested typed classes. Anything under a
    ``Dict`` (``metadata.<key>``) is known once the dict is."""
    if path == "object" or (
        cls in (stripe.ListObject, stripe.SearchResultObject)
        and path in ENVELOPE_KEYS["list" if cls is stripe.ListObject else "search_result"]
    ):
        return True
    candidates: list[Any] = [cls]
    for segment in path.split("."):
        name, elements = segment.removesuffix("[]"), segment.count("[]")
        found: list[Any] = []
        for candidate in candidates:
            if candidate in (dict, typing.Dict, Mapping):  # noqa: UP006
                return True
            if not isinstance(candidate, type):
                continue
            found += _field_classes(candidate, name)
        for _ in range(elements):
            found = [c[1] for c in found if isinstance(c, tuple) and c[0] == "list-of"]
        if not found:
            return False
        candidates = found
    return True


@dataclass
class Reads:
    """Every field revsync's adapter read, as ``(object type, path inside it)``."""

    fields: set[tuple[str, str]] = field(default_factory=set)
    bodies: list[dict[str, Any]] = field(default_factory=list)


class TrackedDict(dict[str, Any]):
    """A JSON object that records the keys read from it. A value with an ``object`` name is
    a Stripe object: paths restart there."""

    def __init__(self, raw: dict[str, Any], reads: Reads, context: str, path: str) -> None:
        super().__init__(raw)
        self._reads, self._context, self._path = reads, context, path

    def _read(self, key: str) -> None:
        self._reads.fields.add((self._context, f"{self._path}.{key}" if self._path else key))

    def _wrap(self, key: str, value: Any) -> Any:
        return track(
            value, self._reads, self._context, f"{self._path}.{key}" if self._path else key
        )

    def get(self, key: str, default: Any = None) -> Any:
        self._read(key)
        return self._wrap(key, super().__getitem__(key)) if key in self.keys() else default

    def __getitem__(self, key: str) -> Any:
        self._read(key)
        return self._wrap(key, super().__getitem__(key))

    def __contains__(self, key: object) -> bool:
        if isinstance(key, str):
            self._read(key)
        return super().__contains__(key)


class TrackedList(list[Any]):
    def __init__(self, raw: list[Any], reads: Reads, context: str, path: str) -> None:
        super().__init__(raw)
        self._reads, self._context, self._path = reads, context, path

    def _wrap(self, value: Any) -> Any:
        return track(value, self._reads, self._context, f"{self._path}[]")

    def __getitem__(self, index: Any) -> Any:
        value = super().__getitem__(index)
        if isinstance(index, slice):
            return [self._wrap(v) for v in value]
        return self._wrap(value)

    def __iter__(self) -> Any:
        return (self._wrap(v) for v in super().__iter__())


def track(value: Any, reads: Reads, context: str, path: str) -> Any:
    if isinstance(value, dict):
        name = dict.get(value, "object")
        if isinstance(name, str) and name in OBJECT_CLASSES:
            context, path = name, ""
        return TrackedDict(value, reads, context, path)
    if isinstance(value, list):
        return TrackedList(value, reads, context, path)
    return value


def unknown_fields(body: Any, context: str = "", path: str = "") -> list[str]:
    """Every field of an API answer that the library's typed resource does not have."""
    problems: list[str] = []
    if isinstance(body, list):
        for item in body:
            problems += unknown_fields(item, context, f"{path}[]")
        return problems
    if not isinstance(body, dict):
        return problems
    name = body.get("object")
    if isinstance(name, str) and name in OBJECT_CLASSES:
        context, path = name, ""
    for key, value in body.items():
        sub = f"{path}.{key}" if path else key
        if context and not field_known(resource_class(context), sub):
            problems.append(f"{context}: {sub}")
            continue
        if context and _is_dict_field(resource_class(context), sub):
            continue  # metadata and other free-form hashes
        problems += unknown_fields(value, context, sub)
    return problems


def _is_dict_field(cls: type, path: str) -> bool:
    candidates: list[Any] = [cls]
    for segment in path.split("."):
        name = segment.removesuffix("[]")
        found: list[Any] = []
        for candidate in candidates:
            if isinstance(candidate, tuple):
                candidate = candidate[1]
            if isinstance(candidate, type) and candidate not in (dict,):
                found += _field_classes(candidate, name)
        candidates = found
    return any(c in (dict, typing.Dict, Mapping) for c in candidates)  # noqa: UP006


# --- webhook signatures (the library's functions are untyped) ------------------------------


def construct_event(payload: str, header: str, secret: str) -> stripe.Event:
    """``stripe.Webhook.construct_event``: verifies, then loads the event."""
    event: stripe.Event = stripe.Webhook.construct_event(  # type: ignore[no-untyped-call]
        payload, header, secret
    )
    return event


def verify_header(payload: str, header: str, secret: str, tolerance: int | None) -> bool:
    """``stripe.WebhookSignature.verify_header``."""
    verified: bool = stripe.WebhookSignature.verify_header(  # type: ignore[no-untyped-call]
        payload, header, secret, tolerance
    )
    return verified


def compute_signature(signed_payload: str, secret: str) -> str:
    """The library's own HMAC of a signed payload (``"<t>.<payload>"``)."""
    signature: str = stripe.WebhookSignature._compute_signature(  # type: ignore[no-untyped-call]
        signed_payload, secret
    )
    return signature
