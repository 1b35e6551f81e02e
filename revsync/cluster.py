"""Prepare a self-hosted Temporal cluster for revsync: ``revsync temporal setup``.

It creates the namespace when it does not exist and registers revsync's custom search
attributes on it; both steps are idempotent, so the compose stack runs it as a one-shot service
on every ``up``. It waits for the cluster to answer first: a frontend that has just started
refuses calls for a while, and a namespace that was just created is not usable at once.

Temporal Cloud is set up in its own console or with ``tcld`` (namespaces and search attributes
are account operations there), so this is for self-hosted clusters only.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from datetime import timedelta

import structlog
from google.protobuf.duration_pb2 import Duration
from temporalio.api.workflowservice.v1 import (
    DescribeNamespaceRequest,
    RegisterNamespaceRequest,
)
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from revsync.settings import Settings
from revsync.temporal import register_search_attributes, tls_config

log = structlog.get_logger("revsync.cluster")

# Answers that mean "not yet": the frontend is starting, or the namespace is not in its cache.
_NOT_YET = (RPCStatusCode.UNAVAILABLE, RPCStatusCode.NOT_FOUND, RPCStatusCode.DEADLINE_EXCEEDED)
RETRY_SECONDS = 2.0


@dataclass
class SetupResult:
    namespace: str
    namespace_created: bool = False
    attributes_added: list[str] = field(default_factory=list)


async def operator_client(settings: Settings) -> Client:
    """A client for cluster operations. It carries no payloads, so it needs no payload keys."""
    api_key = settings.temporal_api_key
    return await Client.connect(
        settings.temporal_address,
        namespace=settings.temporal_namespace,
        tls=tls_config(settings),
        api_key=None if api_key is None else api_key.get_secret_value(),
    )


async def ensure_namespace(client: Client, namespace: str, retention: timedelta) -> bool:
    """Create ``namespace`` with ``retention`` unless it exists; True when it was created."""
    try:
        await client.workflow_service.describe_namespace(
            DescribeNamespaceRequest(namespace=namespace)
        )
        return False
    except RPCError as error:
        if error.status is not RPCStatusCode.NOT_FOUND:
            raise
    period = Duration()
    period.FromTimedelta(retention)
    try:
        await client.workflow_service.register_namespace(
            RegisterNamespaceRequest(
                namespace=namespace,
                workflow_execution_retention_period=period,
                description="revsync sagas",
            )
        )
    except RPCError as refused:
        if refused.status is RPCStatusCode.ALREADY_EXISTS:  # created meanwhile by another run
            return False
        raise
    return True


async def setup_cluster(
    settings: Settings, *, retention: timedelta, wait_seconds: float
) -> SetupResult:
    """Make the configured namespace ready for revsync, retrying while the cluster is not
    (yet) answering, for up to ``wait_seconds``. Raises the last error after that."""
    namespace = settings.temporal_namespace
    result = SetupResult(namespace=namespace)
    deadline = time.monotonic() + wait_seconds
    client: Client | None = None
    while True:
        try:
            if client is None:
                client = await operator_client(settings)
            if await ensure_namespace(client, namespace, retention):
                result.namespace_created = True
                log.info("namespace created", namespace=namespace, retention=str(retention))
            result.attributes_added += await register_search_attributes(client, namespace)
            return result
        except RPCError as error:
            if error.status not in _NOT_YET or time.monotonic() > deadline:
                raise
            log.info("temporal not ready", namespace=namespace, status=error.status.name)
        except RuntimeError as error:  # the connection itself failed
            if time.monotonic() > deadline:
                raise
            log.info("temporal unreachable", address=settings.temporal_address, error=str(error))
        await asyncio.sleep(RETRY_SECONDS)
