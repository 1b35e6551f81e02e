"""What every mapping of a vendor's quote to revsync's canonical ``Quote`` shares: collecting
field errors instead of stopping at the first, the error naming every field at fault, and
turning the ``Quote`` model's own validation errors into the vendor's field paths.

Used by the Stripe quote, Salesforce CPQ and HubSpot deal mappings. Messages never repeat the
payload's values: quotes carry names and other personal data."""

from __future__ import annotations

import re
from collections.abc import Callable

from pydantic import ValidationError

FieldError = dict[str, str]  # {"field": <the vendor's path>, "message": ...}

_QUOTED = re.compile(r"'[^']*'|\"[^\"]*\"")


class QuoteMappingError(Exception):
    """The vendor's record does not describe a quote revsync can book. ``fields`` lists
    ``{"field", "message"}``; neither the summary nor the messages contain its values.
    Subclasses name the record in ``source``."""

    source = "quote"

    def __init__(self, fields: list[FieldError]) -> None:
        self.fields = fields
        paths = ", ".join(dict.fromkeys(item["field"] for item in fields))
        count = len(fields)
        super().__init__(
            f"{self.source} cannot be mapped: {count} field error{'s' if count != 1 else ''}"
            f" ({paths})"
        )


class FieldErrors:
    """Field errors collected while a mapping reads on, so one answer names them all."""

    def __init__(self) -> None:
        self.errors: list[FieldError] = []

    def error(self, field: str, message: str) -> None:
        self.errors.append({"field": field, "message": message})


def validation_fields(
    error: ValidationError,
    field_of: Callable[[tuple[int | str, ...]], str],
    *,
    scrub_all: bool = False,
) -> list[FieldError]:
    """The ``Quote`` model's validation errors as the vendor's fields (``field_of`` maps a
    pydantic ``loc``). Quoted text in a value or assertion error's message (every message,
    with ``scrub_all``) becomes ``<value>``."""
    fields: list[FieldError] = []
    for item in error.errors(include_input=False, include_url=False):
        message = item["msg"]
        if scrub_all or item["type"] in {"value_error", "assertion_error"}:
            message = _QUOTED.sub("<value>", message)
        fields.append({"field": field_of(item["loc"]), "message": message})
    return fields
