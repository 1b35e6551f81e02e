"""Salesforce Outbound Messages: who sent it, what it says, and the reply Salesforce expects.

Outbound Messages are SOAP 1.1 posts and carry no signature. Authenticity rests on two
things, both required:

* mutual TLS at the reverse proxy: the outbound message definition is set to send a client
  certificate, and the proxy in front of the gateway only forwards requests presenting it;
* the organisation id inside the message, checked against an allow-list with
  :func:`verify_organization`.

The envelope's body is a ``notifications`` element in the
``http://soap.sforce.com/2005/09/outbound`` namespace holding ``OrganizationId``,
``ActionId``, ``SessionId`` (nil unless the rule sends one; never kept here), ``EnterpriseUrl``,
``PartnerUrl`` and 1 to 100 ``Notification`` elements. Each notification has an ``Id`` and an
``sObject`` whose ``xsi:type`` names the object type (``sf:SBQQ__Quote__c``) and whose
children are the selected fields in the ``urn:sobject.enterprise.soap.sforce.com``
namespace; a field marked ``xsi:nil="true"`` is ``None``.

The XML is parsed with :mod:`defusedxml` with DTDs forbidden, so entity expansion
("billion laughs") and external entities are refused before any expansion happens. Every
parse failure is a :class:`MalformedPayload`.

Salesforce retries a delivery until it receives ``<Ack>true</Ack>`` (:func:`ack`), so
processing must be idempotent on the notification ids.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from xml.sax.saxutils import escape, quoteattr

from defusedxml import ElementTree as SafeET  # type: ignore[import-untyped]
from pydantic import BaseModel, ConfigDict

from adapters.webhooks.signatures import MalformedPayload, SignatureError

__all__ = [
    "ACK_CONTENT_TYPE",
    "ENTERPRISE_NS",
    "MAX_NOTIFICATIONS",
    "OUTBOUND_NS",
    "MalformedPayload",
    "Notification",
    "OutboundMessage",
    "SignatureError",
    "ack",
    "parse_outbound_message",
    "sample_outbound_message",
    "verify_organization",
]

OUTBOUND_NS = "http://soap.sforce.com/2005/09/outbound"
ENTERPRISE_NS = "urn:sobject.enterprise.soap.sforce.com"
SOAP_ENV_NS = "http://schemas.xmlsoap.org/soap/envelope/"
XSI_NS = "http://www.w3.org/2001/XMLSchema-instance"
ACK_CONTENT_TYPE = "text/xml; charset=utf-8"
MAX_NOTIFICATIONS = 100

_XSI_TYPE = f"{{{XSI_NS}}}type"
_XSI_NIL = f"{{{XSI_NS}}}nil"
_ID = re.compile(r"[A-Za-z0-9]{15}(?:[A-Z0-5]{3})?", re.IGNORECASE)
_SUFFIX_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345"


class Notification(BaseModel):
    """One record change: the notification id, the object type and the selected fields."""

    model_config = ConfigDict(frozen=True)

    id: str
    sobject_type: str
    fields: dict[str, str | None]


class OutboundMessage(BaseModel):
    """One delivery: the sending org, the workflow action and its notifications."""

    model_config = ConfigDict(frozen=True)

    organization_id: str
    action_id: str
    notifications: list[Notification]


# -- organisation allow-list --------------------------------------------------------------


def _suffix(id15: str) -> str:
    """The three case-insensitive characters Salesforce appends to a 15-character id: one per
    block of five, encoding which characters of that block are upper case."""
    out = ""
    for start in (0, 5, 10):
        bits = 0
        for position, char in enumerate(id15[start : start + 5]):
            if "A" <= char <= "Z":
                bits |= 1 << position
        out += _SUFFIX_ALPHABET[bits]
    return out


def _id15(record_id: str) -> str | None:
    """The case-sensitive 15-character form of ``record_id``, or ``None`` when it is not a
    well-formed 15- or 18-character id (including an 18-character id whose suffix does not
    agree with the case of the first 15 characters)."""
    if not _ID.fullmatch(record_id):
        return None
    head = record_id[:15]
    if len(record_id) == 18 and record_id[15:].upper() != _suffix(head):
        return None
    return head


def verify_organization(organization_id: str, allowed: list[str]) -> None:
    """Raise :class:`SignatureError` unless ``organization_id`` is in ``allowed``.

    Ids are compared on their case-sensitive first 15 characters, so the 15- and 18-character
    forms of one id match. Malformed ids never match, and an empty allow-list refuses
    everything."""
    wanted = _id15(organization_id.strip())
    if wanted is not None:
        for entry in allowed:
            if _id15(entry.strip()) == wanted:
                return
    raise SignatureError("unknown organization")


# -- parsing --------------------------------------------------------------------------------


def _local(element: ET.Element, namespace: str, name: str) -> ET.Element | None:
    return element.find(f"{{{namespace}}}{name}")


def _is_nil(element: ET.Element) -> bool:
    return element.get(_XSI_NIL) in ("true", "1")


def _optional_text(element: ET.Element) -> str | None:
    """The text of a leaf element, as sent; ``None`` when it is marked ``xsi:nil``."""
    if _is_nil(element):
        return None
    if len(element):
        raise MalformedPayload("outbound message has a nested element where a value belongs")
    return element.text or ""


def _required_text(element: ET.Element | None, what: str) -> str:
    """The non-empty text of a leaf element that must be present."""
    text = None if element is None else _optional_text(element)
    text = (text or "").strip()
    if not text:
        raise MalformedPayload(f"outbound message has no {what}")
    return text


def _parse_xml(body: bytes) -> ET.Element:
    try:
        root: ET.Element = SafeET.fromstring(body, forbid_dtd=True)
    except (ET.ParseError, ValueError, LookupError):
        # defusedxml's DTDForbidden / EntitiesForbidden / ExternalReferenceForbidden are
        # ValueErrors; plain syntax errors are ParseErrors; an XML declaration naming an
        # encoding Python does not know is a LookupError (found by the webhook fuzz test).
        raise MalformedPayload("body is not a valid XML document") from None
    return root


def _notification(element: ET.Element) -> Notification:
    notification_id = _required_text(_local(element, OUTBOUND_NS, "Id"), "notification Id")
    sobject = _local(element, OUTBOUND_NS, "sObject")
    if sobject is None:
        raise MalformedPayload("outbound message notification has no sObject")
    declared = sobject.get(_XSI_TYPE, "")
    sobject_type = declared.rpartition(":")[2].strip()
    if not sobject_type:
        raise MalformedPayload("outbound message sObject has no type")
    fields: dict[str, str | None] = {}
    for child in sobject:
        namespace, _, name = child.tag.partition("}")
        if namespace != "{" + ENTERPRISE_NS or not name:
            raise MalformedPayload("outbound message sObject has an unexpected element")
        if name in fields:
            raise MalformedPayload("outbound message sObject repeats a field")
        fields[name] = _optional_text(child)
    return Notification(id=notification_id, sobject_type=sobject_type, fields=fields)


def parse_outbound_message(body: bytes) -> OutboundMessage:
    """The outbound message in ``body`` (a SOAP envelope). Raises :class:`MalformedPayload`
    when it is not XML, uses a DTD or entities, is not an outbound message, or holds no or
    more than 100 notifications."""
    root = _parse_xml(body)
    if root.tag != f"{{{SOAP_ENV_NS}}}Envelope":
        raise MalformedPayload("body is not a SOAP envelope")
    soap_body = _local(root, SOAP_ENV_NS, "Body")
    message = None if soap_body is None else _local(soap_body, OUTBOUND_NS, "notifications")
    if message is None:
        raise MalformedPayload("body is not an outbound message")
    elements = message.findall(f"{{{OUTBOUND_NS}}}Notification")
    if not elements:
        raise MalformedPayload("outbound message has no notifications")
    if len(elements) > MAX_NOTIFICATIONS:
        raise MalformedPayload(f"outbound message has more than {MAX_NOTIFICATIONS} notifications")
    organization_id = _required_text(
        _local(message, OUTBOUND_NS, "OrganizationId"), "OrganizationId"
    )
    action_id = _required_text(_local(message, OUTBOUND_NS, "ActionId"), "ActionId")
    return OutboundMessage(
        organization_id=organization_id,
        action_id=action_id,
        notifications=[_notification(element) for element in elements],
    )


# -- responses and fixtures -------------------------------------------------------------------


def ack(ok: bool = True) -> bytes:
    """The SOAP response body acknowledging a delivery. ``ok=False`` answers
    ``<Ack>false</Ack>``, which makes Salesforce queue the message for a retry."""
    value = "true" if ok else "false"
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f'<soapenv:Envelope xmlns:soapenv="{SOAP_ENV_NS}">'
        "<soapenv:Body>"
        f'<notificationsResponse xmlns="{OUTBOUND_NS}">'
        f"<Ack>{value}</Ack>"
        "</notificationsResponse>"
        "</soapenv:Body>"
        "</soapenv:Envelope>"
    ).encode()


def _field_xml(name: str, value: str | None) -> str:
    if value is None:
        return f'<sf:{name} xsi:nil="true"/>'
    return f"<sf:{name}>{escape(value)}</sf:{name}>"


def sample_outbound_message(
    org_id: str,
    notifications: list[tuple[str, str, dict[str, str | None]]],
    *,
    action_id: str = "04k5g000000XyZaAAK",
    instance_url: str = "https://revsync-demo.my.salesforce.com",
) -> bytes:
    """An outbound message envelope as Salesforce would post it, for tests and the sandbox.

    Each notification is ``(notification id, sObject type, {field: value or None})``; field
    names must be valid XML names (Salesforce API names are)."""
    api = f"{instance_url}/services/Soap"
    parts = [
        '<?xml version="1.0" encoding="UTF-8"?>\n',
        f'<soapenv:Envelope xmlns:soapenv="{SOAP_ENV_NS}"'
        ' xmlns:xsd="http://www.w3.org/2001/XMLSchema"'
        f' xmlns:xsi="{XSI_NS}">',
        "<soapenv:Body>",
        f'<notifications xmlns="{OUTBOUND_NS}">',
        f"<OrganizationId>{escape(org_id)}</OrganizationId>",
        f"<ActionId>{escape(action_id)}</ActionId>",
        '<SessionId xsi:nil="true"/>',
        f"<EnterpriseUrl>{escape(f'{api}/c/61.0/{org_id[:15]}')}</EnterpriseUrl>",
        f"<PartnerUrl>{escape(f'{api}/u/61.0/{org_id[:15]}')}</PartnerUrl>",
    ]
    for notification_id, sobject_type, fields in notifications:
        parts.append(f"<Notification><Id>{escape(notification_id)}</Id>")
        parts.append(
            f'<sObject xsi:type={quoteattr("sf:" + sobject_type)} xmlns:sf="{ENTERPRISE_NS}">'
        )
        parts.extend(_field_xml(name, value) for name, value in fields.items())
        parts.append("</sObject></Notification>")
    parts.append("</notifications></soapenv:Body></soapenv:Envelope>")
    return "".join(parts).encode()
