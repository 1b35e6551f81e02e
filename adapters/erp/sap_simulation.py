"""SAP's validate-only call for shadow mode: the Sales Order Simulation API.

*Sales Order - Simulate (A2X)* (``API_SALES_ORDER_SIMULATION_SRV``, entity set
``A_SalesOrderSimulation``, communication scenario Sales Order Integration ``SAP_COM_0109``)
takes the body of a sales order deep insert and answers the order as S/4HANA would create it
(pricing, availability, credit check) without saving it; what it refuses, it refuses with the
messages the create would raise (source: SAP Cloud SDK, "Sales Order Simulation Service",
https://help.sap.com/doc/dfb895df81c04bbc9e7cefc82e92dff7/1.0/en-US/modules/_sap_cloud_sdk_vdm_sales_order_simulation_service.html;
Ballerina connector overview of the same API,
https://central.ballerina.io/ballerinax/sap.s4hana.api_sales_order_simulation_srv/latest).

In shadow mode the gate (``adapters/shadow/gate.py``) asks it before recording a
``create_sales_order``: the body is the adapter's own (``SapErp._order_body``), without the
order's long text (the simulation entity has no ``to_Text``). An order for a customer that
shadow mode made (a synthetic id) is not simulated: SAP would refuse the unknown sold-to
party, which the live create would not. The communication arrangement needs the simulation
service in addition to ``API_SALES_ORDER_SRV``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from adapters.erp.sap import SapErp
from adapters.errors import NotFoundError, RejectedError
from domain.shadow import is_synthetic

SIMULATION = "API_SALES_ORDER_SIMULATION_SRV"
ENTITY_SET = "A_SalesOrderSimulation"


class SapOrderSimulation:
    """Validate-only for SAP's sales orders (``adapters.shadow.gate.ValidatesWrites``)."""

    def __init__(self, erp: SapErp) -> None:
        self.erp = erp

    async def validate_write(
        self, operation: str, arguments: Mapping[str, Any]
    ) -> list[tuple[str, str]] | None:
        if operation != "create_sales_order":
            return None
        customer_id = str(arguments["customer_id"])
        if is_synthetic(customer_id):
            return None
        try:
            body = self.erp._order_body(arguments["draft"], customer_id)
            body.pop("to_Text", None)
            await self.erp.request(
                "simulate_sales_order", "POST", SIMULATION, ENTITY_SET, json_body=body
            )
        except NotFoundError:
            raise
        except RejectedError as refused:
            return [(refused.code or "REJECTED", refused.message)]
        return []
