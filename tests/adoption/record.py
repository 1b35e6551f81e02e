"""Record the adoption history the replay test replays: ``python -m tests.adoption.record``.

One customers adoption on the time-skipping server with fake activities: every listing,
the ledger, an approval of a bucket (a link written, an account read, a golden record
started), then ``close``. Written beside the other histories as
``tests/histories/adoption_customers.json``. Re-record only when a change is meant to alter
the commands of an existing run.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from temporalio import activity
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from domain.adoption import (
    AccountsRead,
    AdoptActivity,
    AdoptionInput,
    ApproveEntries,
    Bucket,
    Existing,
    ExistingIds,
    Kind,
    LedgerQuery,
    LinkCustomers,
    LinksWritten,
    ReadAccounts,
    Started,
    StartGoldenRecords,
)
from domain.contracts import TaskQueue
from domain.reconciliation import CustomerPage, ListPage, ReconcileActivity, System, fingerprints
from domain.reconciliation import CustomerRecord as Record
from tests.conftest import installed_binary
from tests.ports.contract import seeded_customer
from workflows.adoption import AdoptionWorkflow

HISTORY = Path(__file__).parents[1] / "histories" / "adoption_customers.json"
WORKFLOW_ID = "adopt-customers-recorded"
ACCOUNT = seeded_customer().account_id


def page(system: System, *records: Record) -> Any:
    @activity.defn(
        name={
            System.CRM: ReconcileActivity.CRM_LIST_ACCOUNTS,
            System.ERP: ReconcileActivity.ERP_LIST_CUSTOMERS,
            System.BILLING: ReconcileActivity.BILLING_LIST_CUSTOMERS,
        }[system]
    )
    async def listing(request: ListPage) -> CustomerPage:
        return CustomerPage(items=list(records))

    return listing


@activity.defn(name=AdoptActivity.EXISTING)
async def existing(request: Existing) -> ExistingIds:
    return ExistingIds()


@activity.defn(name=AdoptActivity.ERP_LINK_CUSTOMERS)
async def link(request: LinkCustomers) -> LinksWritten:
    return LinksWritten(done=[item.record_id for item in request.links])


@activity.defn(name=AdoptActivity.CRM_READ_ACCOUNTS)
async def read_accounts(request: ReadAccounts) -> AccountsRead:
    return AccountsRead(customers=[seeded_customer()], read_at=datetime(2026, 3, 1, tzinfo=UTC))


@activity.defn(name=AdoptActivity.START_GOLDEN_RECORDS)
async def golden(request: StartGoldenRecords) -> Started:
    return Started(outcomes={s.customer.account_id: "golden record started" for s in request.seeds})


async def until(handle: Any, condition: Any, tries: int = 400) -> None:
    """Poll the ledger query until ``condition`` holds (bounded by the number of tries)."""
    for _ in range(tries):
        if condition(await handle.query(AdoptionWorkflow.ledger, LedgerQuery())):
            return
        await asyncio.sleep(0.05)
    raise AssertionError("the adoption never got there")


async def record() -> str:
    env = await WorkflowEnvironment.start_time_skipping(
        data_converter=pydantic_data_converter,
        test_server_existing_path=installed_binary("temporal-test-server"),
    )
    fields = {"tax_id": seeded_customer().tax_id or "", "name": "Nordlicht"}
    try:
        workers = [
            Worker(
                env.client,
                task_queue=TaskQueue.CRM,
                activities=[
                    page(
                        System.CRM,
                        Record(
                            system=System.CRM,
                            record_id=ACCOUNT,
                            account_id=ACCOUNT,
                            fields=fingerprints(fields),
                        ),
                    ),
                    read_accounts,
                ],
            ),
            Worker(
                env.client,
                task_queue=TaskQueue.ERP,
                activities=[
                    page(
                        System.ERP,
                        Record(system=System.ERP, record_id="301", fields=fingerprints(fields)),
                    ),
                    link,
                ],
            ),
            Worker(env.client, task_queue=TaskQueue.BILLING, activities=[page(System.BILLING)]),
            Worker(
                env.client,
                task_queue=TaskQueue.ORCHESTRATION,
                workflows=[AdoptionWorkflow],
                activities=[existing, golden],
            ),
        ]
        async with workers[0], workers[1], workers[2], workers[3]:
            handle = await env.client.start_workflow(
                AdoptionWorkflow.run,
                AdoptionInput(kind=Kind.CUSTOMERS, window="recorded"),
                id=WORKFLOW_ID,
                task_queue=TaskQueue.ORCHESTRATION,
            )
            await until(handle, lambda ledger: bool(ledger.entries))
            await handle.execute_update(
                AdoptionWorkflow.approve,
                ApproveEntries(bucket=Bucket.MATCHED_BY_KEY, by="Oscar Ops", note="recorded"),
            )
            await until(
                handle,
                lambda ledger: any(
                    (e.outcome or "").startswith("cross-reference") for e in ledger.entries
                ),
            )
            await handle.execute_update(AdoptionWorkflow.close, "Oscar Ops")
            await handle.result()
            return (await handle.fetch_history()).to_json()
    finally:
        await env.shutdown()


def main() -> None:
    HISTORY.write_text(asyncio.run(record()))
    print(f"wrote {HISTORY}")


if __name__ == "__main__":
    main()
