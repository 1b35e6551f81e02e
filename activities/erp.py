"""ERP activities (task queue ``erp``)."""

from __future__ import annotations

from temporalio import activity

from activities.classify import vendor_call
from adapters.ports import ErpPort
from domain.catalog import catalog_mismatches
from domain.contracts import (
    Activity,
    BookedSalesOrder,
    BookSalesOrder,
    CancelKeyedSalesOrder,
    CancelSalesOrder,
    CatalogCheckResult,
    CheckCatalog,
    KeyedCancellation,
)
from domain.order import SalesOrder


class ErpActivities:
    def __init__(self, erp: ErpPort) -> None:
        self.erp = erp

    @activity.defn(name=Activity.ERP_CHECK_CATALOG)
    async def check_catalog(self, request: CheckCatalog) -> CatalogCheckResult:
        """Compare every quoted line with the ERP catalog. Reads only."""
        skus = sorted({line.sku for line in request.quote.lines})
        with vendor_call(self.erp.vendor):
            items = await self.erp.get_catalog_items(skus)
        return CatalogCheckResult(mismatches=catalog_mismatches(request.quote, items))

    @activity.defn(name=Activity.ERP_BOOK_SALES_ORDER)
    async def book_sales_order(self, request: BookSalesOrder) -> BookedSalesOrder:
        """Upsert the ERP customer, then create the sales order. Both are keyed, so a retry
        (after a timeout, say) finds what the first attempt created."""
        with vendor_call(self.erp.vendor):
            customer_id = await self.erp.upsert_customer(request.customer, request.customer_key)
            order = await self.erp.create_sales_order(request.order, customer_id)
        return BookedSalesOrder(customer_id=customer_id, order=order)

    @activity.defn(name=Activity.ERP_CANCEL_SALES_ORDER)
    async def cancel_sales_order(self, request: CancelSalesOrder) -> SalesOrder:
        with vendor_call(self.erp.vendor):
            return await self.erp.cancel_sales_order(request.order_id, request.reason)

    @activity.defn(name=Activity.ERP_CANCEL_KEYED_SALES_ORDER)
    async def cancel_keyed_sales_order(self, request: CancelKeyedSalesOrder) -> KeyedCancellation:
        """Cancel the sales order keyed by ``request.external_id``, if the ERP made one: the
        undo of a booking whose outcome is unknown (the order may exist though its answer was
        lost). Both calls are idempotent; nothing found is nothing to undo."""
        with vendor_call(self.erp.vendor):
            order = await self.erp.find_sales_order(request.external_id)
            if order is None:
                return KeyedCancellation(found=False)
            cancelled = await self.erp.cancel_sales_order(order.order_id, request.reason)
        return KeyedCancellation(
            found=True, record_id=cancelled.order_id, status=cancelled.status.value
        )
