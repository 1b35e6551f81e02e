"""The one way revsync connects to Temporal: same converter everywhere."""

from __future__ import annotations

from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import (
    AddSearchAttributesRequest,
    ListSearchAttributesRequest,
)
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter

from revsync.settings import Settings
from workflows import visibility


async def connect(settings: Settings) -> Client:
    """A client for the configured namespace, with the pydantic data converter."""
    return await Client.connect(
        settings.temporal_address,
        namespace=settings.temporal_namespace,
        data_converter=pydantic_data_converter,
    )


async def register_search_attributes(client: Client, namespace: str) -> list[str]:
    """Register revsync's custom search attributes on ``namespace``; returns those added.

    Idempotent: attributes that already exist are left alone. (``revsync dev`` passes them
    to the dev server at start instead; this is for self-hosted clusters.)
    """
    existing = await client.operator_service.list_search_attributes(
        ListSearchAttributesRequest(namespace=namespace)
    )
    wanted = {
        key.name: IndexedValueType.ValueType(key.indexed_value_type) for key in visibility.ALL_KEYS
    }
    missing = {
        name: kind for name, kind in wanted.items() if name not in existing.custom_attributes
    }
    if missing:
        await client.operator_service.add_search_attributes(
            AddSearchAttributesRequest(namespace=namespace, search_attributes=missing)
        )
    return sorted(missing)
