"""Every method of every port is a read the gate passes or a write it holds, and the gated
adapters implement each port whole: a method added to a port without a decision here fails."""

from __future__ import annotations

import inspect

import pytest

from adapters.shadow.gate import PORTS, READS, WRITES, GatedBilling, GatedCrm, GatedErp
from tests.shadow.audit import is_write

GATED = {"crm": GatedCrm, "erp": GatedErp, "billing": GatedBilling}


def methods(cls: type) -> set[str]:
    return {
        name
        for name, member in inspect.getmembers(cls)
        if not name.startswith("_") and inspect.iscoroutinefunction(member)
    }


@pytest.mark.parametrize("port", sorted(PORTS))
def test_every_port_method_is_a_read_or_a_write_never_both(port: str) -> None:
    declared = methods(PORTS[port])
    assert READS[port] & WRITES[port] == set()
    assert declared - (READS[port] | WRITES[port]) == set(), "unclassified port methods"
    assert (READS[port] | WRITES[port]) - declared == set(), "classified methods not on the port"


@pytest.mark.parametrize("port", sorted(PORTS))
def test_the_gated_adapter_has_every_method_of_its_port(port: str) -> None:
    assert methods(PORTS[port]) <= methods(GATED[port])


@pytest.mark.parametrize(
    ("method", "path", "body", "write"),
    [
        ("GET", "/stripe/v1/customers/search", b"", False),
        ("POST", "/stripe/v1/subscriptions", b"a=1", True),
        ("DELETE", "/stripe/v1/subscriptions/sub_1", b"", True),
        ("POST", "/salesforce/services/oauth2/token", b"grant_type=x", False),
        (
            "POST",
            "/salesforce/services/data/v61.0/composite",
            b'{"compositeRequest": [{"method": "GET", "url": "/q"}]}',
            False,
        ),
        (
            "POST",
            "/salesforce/services/data/v61.0/composite",
            b'{"compositeRequest": [{"method": "GET"}, {"method": "PATCH"}]}',
            True,
        ),
        ("PATCH", "/salesforce/services/data/v61.0/sobjects/Account/001", b"{}", True),
        ("POST", "/hubspot/crm/v3/objects/companies/batch/read", b"{}", False),
        ("POST", "/hubspot/crm/v3/objects/deals/search", b"{}", False),
        ("POST", "/hubspot/crm/v3/objects/orders/batch/upsert", b"{}", True),
        ("POST", "/netsuite/services/rest/query/v1/suiteql", b"{}", False),
        ("PUT", "/netsuite/services/rest/record/v1/customer/eid:acct-1", b"{}", True),
        ("POST", "/sap/sap/bc/srt/scs_ext/sap/journalentrycreaterequestconfi", b"<x/>", True),
        ("MERGE", "/sap/sap/opu/odata/sap/API_BUSINESS_PARTNER/A_BusinessPartner('1')", b"", True),
        ("POST", "/dynamics/api/data/v9.2/CancelSalesOrder", b"{}", True),
        (
            "POST",
            "/sap/sap/opu/odata/sap/API_SALES_ORDER_SIMULATION_SRV/A_SalesOrderSimulation",
            b"{}",
            False,
        ),
        ("POST", "/sap/sap/opu/odata/sap/API_SALES_ORDER_SRV/A_SalesOrder", b"{}", True),
        ("POST", "/zuora/oauth/token", b"", False),
        ("POST", "/_sandbox/stripe/invoices", b"{}", False),
        ("POST", "/events/sandbox", b"{}", False),
    ],
)
def test_the_audit_knows_a_write_per_vendor(
    method: str, path: str, body: bytes, write: bool
) -> None:
    assert is_write(method, path, body) is write
