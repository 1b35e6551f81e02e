"""`revsync dev`'s generated local secrets, and the CLI that makes tokens and keys."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from revsync.auth import StaffRole, StaffToken, TokenRegistry
from revsync.cli import app
from revsync.codec import KeyRing
from revsync.devsecrets import DEV_STAFF_NAME, FILE_NAME, ensure_dev_secrets, with_secrets
from revsync.devstack import temporal_server_argv, ui_codec_endpoint
from revsync.settings import Settings


def test_generated_once_kept_private_and_usable(tmp_path: Path):
    settings = Settings(_env_file=None, data_dir=tmp_path)
    first = ensure_dev_secrets(settings)
    path = tmp_path / FILE_NAME
    assert path.stat().st_mode & 0o777 == 0o600
    assert ensure_dev_secrets(settings) == first  # the same values on every start

    ready = with_secrets(settings, first)
    KeyRing.from_settings(ready)  # a valid key ring
    staff = TokenRegistry(ready.operator_tokens).authenticate(
        ready.operator_token.get_secret_value()  # type: ignore[union-attr]
    )
    assert staff is not None
    assert staff.name == DEV_STAFF_NAME
    assert staff.roles == frozenset(StaffRole)


def test_configured_secrets_are_never_replaced(tmp_path: Path):
    settings = Settings(_env_file=None, data_dir=tmp_path, payload_keys="mine:" + "A" * 43 + "=")
    supplied = ensure_dev_secrets(settings)
    assert "REVSYNC_PAYLOAD_KEYS" not in supplied
    assert "REVSYNC_CPQ_WEBHOOK_SECRET" in supplied


def test_tokens_new_prints_a_token_once_and_only_its_digest_for_the_settings():
    result = CliRunner().invoke(
        app, ["tokens", "new", "--name", "Ana <ana@example.com>", "--role", "finance"]
    )
    assert result.exit_code == 0, result.output
    token = result.output.split("shown once): ")[1].split()[0]
    entry = StaffToken.model_validate(json.loads(result.output.strip().splitlines()[-1]))
    assert token not in result.output.strip().splitlines()[-1]
    assert TokenRegistry([entry]).authenticate(token) is not None
    assert entry.roles == frozenset({StaffRole.FINANCE})


def test_keys_new_prints_an_entry_the_key_ring_accepts():
    result = CliRunner().invoke(app, ["keys", "new", "--id", "2026-11"])
    assert result.exit_code == 0, result.output
    ring = KeyRing.parse(result.output.strip())
    assert ring.active_key_id == "2026-11"
    bad = CliRunner().invoke(app, ["keys", "new", "--id", "no spaces allowed"])
    assert bad.exit_code == 2


def test_the_dev_web_ui_decrypts_only_with_the_generated_local_token(tmp_path: Path):
    settings = Settings(_env_file=None, data_dir=tmp_path, gateway_port=8001)
    assert ui_codec_endpoint(settings) == "http://127.0.0.1:8001/codec"  # no local token yet

    ready = with_secrets(settings, ensure_dev_secrets(settings))
    token = ready.operator_token.get_secret_value()  # type: ignore[union-attr]
    endpoint = ui_codec_endpoint(ready)
    assert endpoint == f"http://127.0.0.1:8001/codec/t/{token}"
    argv = temporal_server_argv(ready, endpoint)
    assert argv[argv.index("--ui-codec-endpoint") + 1] == endpoint

    # Staff tokens configured by hand: the UI gets the bare endpoint, decrypting for nobody.
    configured = ready.model_copy(
        update={"operator_tokens": [StaffToken(name="x", roles={"finance"}, token_sha256="0" * 64)]}
    )
    assert ui_codec_endpoint(configured) == "http://127.0.0.1:8001/codec"
