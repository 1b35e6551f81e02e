"""TLS, mTLS and API-key connection options come from settings and fail clearly."""

from __future__ import annotations

from pathlib import Path

import pytest
from temporalio.service import TLSConfig

from revsync.settings import MissingSetting, Settings
from revsync.temporal import tls_config


def test_the_local_dev_server_is_plain_grpc():
    assert tls_config(Settings()) is False


def test_tls_alone_or_an_api_key_means_tls_with_system_roots():
    assert tls_config(Settings(temporal_tls=True)) is True
    assert tls_config(Settings(temporal_api_key="cloud-key")) is True


def test_mtls_reads_the_pem_files(tmp_path: Path):
    ca, cert, key = (tmp_path / n for n in ("ca.pem", "client.pem", "client.key"))
    ca.write_bytes(b"CA")
    cert.write_bytes(b"CERT")
    key.write_bytes(b"KEY")
    config = tls_config(
        Settings(
            temporal_tls_ca_cert=ca,
            temporal_tls_client_cert=cert,
            temporal_tls_client_key=key,
            temporal_tls_server_name="temporal.internal",
        )
    )
    assert isinstance(config, TLSConfig)
    assert (config.server_root_ca_cert, config.client_cert, config.client_private_key) == (
        b"CA",
        b"CERT",
        b"KEY",
    )
    assert config.domain == "temporal.internal"


def test_half_a_key_pair_or_an_unreadable_file_names_the_setting(tmp_path: Path):
    cert = tmp_path / "client.pem"
    cert.write_bytes(b"CERT")
    with pytest.raises(MissingSetting, match="REVSYNC_TEMPORAL_TLS_CLIENT_KEY"):
        tls_config(Settings(temporal_tls_client_cert=cert))
    with pytest.raises(MissingSetting, match="REVSYNC_TEMPORAL_TLS_CA_CERT"):
        tls_config(Settings(temporal_tls_ca_cert=tmp_path / "missing.pem"))
