"""The one HTTP path every adapter takes: sends a request, turns transport failures and
error responses into the failure taxonomy of :mod:`adapters.errors`."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from email.utils import parsedate_to_datetime
from typing import Any

import httpx
import structlog

from adapters.breaker import CircuitBreaker
from adapters.errors import (
    NotFoundError,
    RejectedError,
    Throttle,
    TransientError,
    UnknownOutcomeError,
    VendorError,
)

# Turns an error response into the vendor error it means. Each adapter supplies its own,
# because the same status code means different things at different vendors.
Classifier = Callable[[str, httpx.Response], VendorError]
# Reads an answer whose status is a success for the failure it may still report (Zuora's
# HTTP 200 with ``"success": false``, a Salesforce composite's failed subrequest): the error,
# or None when the answer is what it looks like.
AnswerCheck = Callable[[httpx.Response], VendorError | None]

_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

# Request extensions naming the vendor and operation of a call, for its trace span
# (revsync.telemetry); they are not sent.
VENDOR_EXTENSION = "revsync.vendor"
OPERATION_EXTENSION = "revsync.operation"


def retry_after_seconds(response: httpx.Response) -> float | None:
    """``Retry-After`` as seconds, whether given as a number or an HTTP date."""
    value = response.headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def decode_json(response: httpx.Response) -> Any:
    """Response JSON with every non-integer number as ``Decimal``: money never becomes float."""
    if not response.content:
        return None
    return json.loads(response.content, parse_float=Decimal)


def vendor_number(vendor: str, operation: str, value: Any, what: str) -> Decimal:
    """A number from a vendor's answer as an exact ``Decimal``; anything else (a bool, None,
    text that is no number, infinity) is a :class:`RejectedError` naming ``what``."""
    try:
        if isinstance(value, bool) or value is None:
            raise ValueError
        number = Decimal(str(value))
    except (InvalidOperation, ValueError):
        raise RejectedError(vendor, operation, f"{what} is not a number: {value!r}") from None
    if not number.is_finite():
        raise RejectedError(vendor, operation, f"{what} is not a finite number: {value!r}")
    return number


def vendor_error(
    vendor: str,
    operation: str,
    response: httpx.Response,
    message: str,
    code: str | None,
    *,
    transient: bool,
    throttle: Throttle | None = None,
) -> VendorError:
    """The error a vendor's classifier decided on: transient (with ``Retry-After``), not
    found (404), or rejected. A transient 429 is throttling (:class:`Throttle`, a rate
    limit) unless the classifier names the limit itself with ``throttle``."""
    status = response.status_code
    if transient:
        if throttle is None and status == 429:
            throttle = Throttle.rate(f"{vendor} request rate limit (HTTP 429)")
        return TransientError(
            vendor,
            operation,
            message,
            status=status,
            code=code,
            retry_after=retry_after_seconds(response),
            throttle=throttle,
        )
    if status == 404:
        return NotFoundError(vendor, operation, message, status=status, code=code)
    return RejectedError(vendor, operation, message, status=status, code=code)


def classify_by_status(
    vendor: str, operation: str, response: httpx.Response, message: str, code: str | None
) -> VendorError:
    """The default reading of a status code, for vendors whose codes mean the usual things."""
    status = response.status_code
    transient = status == 429 or status == 408 or status >= 500
    return vendor_error(vendor, operation, response, message, code, transient=transient)


class VendorHttp:
    """An ``httpx.AsyncClient`` bound to one vendor and its error classifier."""

    def __init__(
        self,
        vendor: str,
        client: httpx.AsyncClient,
        classify: Classifier,
        *,
        breaker: CircuitBreaker | None = None,
    ) -> None:
        self.vendor = vendor
        self.client = client
        self._classify = classify
        # One breaker per adapter instance: one per vendor per worker process.
        self.breaker = breaker if breaker is not None else CircuitBreaker(vendor)

    async def request(
        self,
        operation: str,
        method: str,
        url: str,
        *,
        ok: tuple[int, ...] = (200, 201, 204),
        json_body: Any = None,
        form: Mapping[str, str] | None = None,
        params: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        content: bytes | None = None,
        content_type: str | None = None,
        check: AnswerCheck | None = None,
    ) -> httpx.Response:
        """Send one request. Returns the response when its status is in ``ok`` (and
        ``check``, if given, finds no failure in it); otherwise raises the
        :class:`VendorError` the vendor's classifier (or ``check``) picks.

        The body is ``json_body`` (JSON, exact decimals), ``form`` (URL-encoded) or ``content``
        (raw bytes, e.g. a SOAP envelope, sent with ``content_type``), at most one of them.

        The vendor's circuit breaker guards the call: while it is open this raises a
        ``CIRCUIT_OPEN`` :class:`TransientError` without sending anything, and every outcome
        (transport failure, classified response, or the failure ``check`` reads in a
        successful one) is reported to it, so a failure a vendor reports inside an HTTP 200
        counts as what it is (a throttle as none, a 5xx-like error as a failure)."""
        if sum(body is not None for body in (json_body, form, content)) > 1:
            raise ValueError("send json_body, form or content, not several")
        send_headers = dict(headers or {})
        if json_body is not None:
            content = dumps_json(json_body)
            send_headers.setdefault("content-type", "application/json")
        elif content is not None and content_type is not None:
            send_headers.setdefault("content-type", content_type)
        with structlog.contextvars.bound_contextvars(vendor=self.vendor, operation=operation):
            async with self.breaker.call(operation):
                response = await self._send(
                    operation, method, url, ok, content, form, params, send_headers
                )
                if check is not None and (failure := check(response)) is not None:
                    raise failure
                return response

    async def _send(
        self,
        operation: str,
        method: str,
        url: str,
        ok: tuple[int, ...],
        content: bytes | None,
        form: Mapping[str, str] | None,
        params: Mapping[str, str] | None,
        send_headers: dict[str, str],
    ) -> httpx.Response:
        try:
            response = await self.client.request(
                method,
                url,
                content=content,
                data=form,
                params=params,
                headers=send_headers,
                extensions={VENDOR_EXTENSION: self.vendor, OPERATION_EXTENSION: operation},
            )
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
            raise TransientError(
                self.vendor, operation, f"could not reach the API ({type(exc).__name__})"
            ) from exc
        except (httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError) as exc:
            if method.upper() in _SAFE_METHODS:
                raise TransientError(
                    self.vendor, operation, f"read failed ({type(exc).__name__})"
                ) from exc
            raise UnknownOutcomeError(
                self.vendor,
                operation,
                f"no response after the request was sent ({type(exc).__name__})",
            ) from exc
        if response.status_code in ok:
            return response
        raise self._classify(operation, response)


_DECIMAL_MARK = re.compile(r'"\\u0000dec:([^"\\]+)\\u0000"')


def dumps_json(value: Any) -> bytes:
    """JSON with ``Decimal`` written as an exact JSON number (never through float)."""

    def default(obj: object) -> Any:
        if isinstance(obj, Decimal):
            if not obj.is_finite():
                raise ValueError(f"cannot encode {obj} as a JSON number")
            return f"\x00dec:{obj}\x00"
        if isinstance(obj, date):
            return obj.isoformat()
        raise TypeError(f"cannot encode {type(obj).__name__} as JSON")

    text = json.dumps(value, default=default, separators=(",", ":"))
    return _DECIMAL_MARK.sub(r"\1", text).encode()
