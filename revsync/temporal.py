"""The one way revsync connects to Temporal: the same encrypting converter everywhere, and
TLS, mTLS or a Temporal Cloud API key as the settings say."""

from __future__ import annotations

from typing import Any

from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import (
    AddSearchAttributesRequest,
    ListSearchAttributesRequest,
)
from temporalio.client import Client
from temporalio.runtime import Runtime
from temporalio.service import TLSConfig

from revsync.codec import KeyRing, encrypted_data_converter
from revsync.settings import MissingSetting, Settings
from revsync.telemetry import client_interceptors
from workflows import visibility


def _read(path: Any, setting: str) -> bytes:
    try:
        return bytes(path.read_bytes())
    except OSError as error:
        raise MissingSetting(setting, f"cannot read {path}: {error.strerror}") from error


def tls_config(settings: Settings) -> TLSConfig | bool:
    """What ``Client.connect(tls=...)`` gets: False for plain gRPC (the local dev server),
    True for TLS with the system roots, or a TLSConfig with a CA and/or a client certificate
    (mTLS). Unreadable files and half a client key pair fail here, naming the setting."""
    cert, key = settings.temporal_tls_client_cert, settings.temporal_tls_client_key
    if (cert is None) != (key is None):
        missing = "temporal_tls_client_key" if key is None else "temporal_tls_client_cert"
        raise MissingSetting(missing, "mTLS needs both the client certificate and its key")
    ca = settings.temporal_tls_ca_cert
    if ca is None and cert is None and settings.temporal_tls_server_name is None:
        return settings.temporal_tls or settings.temporal_api_key is not None
    return TLSConfig(
        server_root_ca_cert=None if ca is None else _read(ca, "temporal_tls_ca_cert"),
        client_cert=None if cert is None else _read(cert, "temporal_tls_client_cert"),
        client_private_key=None if key is None else _read(key, "temporal_tls_client_key"),
        domain=settings.temporal_tls_server_name,
    )


async def connect(
    settings: Settings, keys: KeyRing | None = None, *, runtime: Runtime | None = None
) -> Client:
    """A client for the configured namespace whose payloads are encrypted with the configured
    keys (:class:`MissingSetting` when there are none). Workers and the gateway pass the
    process's ``runtime`` (:func:`revsync.metrics.build_runtime`: metrics, core logs); without
    one the SDK's default runtime is used."""
    ring = keys or KeyRing.from_settings(settings)
    api_key = settings.temporal_api_key
    return await Client.connect(
        settings.temporal_address,
        namespace=settings.temporal_namespace,
        data_converter=encrypted_data_converter(ring),
        tls=tls_config(settings),
        api_key=None if api_key is None else api_key.get_secret_value(),
        runtime=runtime,
        # Tracing (revsync.telemetry); also applies to every worker built from this client.
        interceptors=client_interceptors(),
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
