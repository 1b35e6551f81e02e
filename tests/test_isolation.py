"""The suite does not see a developer's local state: `make dev` then `make test` in one
checkout must pass (the generated `.revsync/dev-secrets.env`, a `.env`, a shell's
`REVSYNC_*` once changed what tests read)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from revsync.settings import DEV_SECRETS_FILE, Settings


def test_settings_in_tests_read_no_env_file_of_the_working_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    (tmp_path / ".revsync").mkdir()
    (tmp_path / ".revsync" / "dev-secrets.env").write_text(
        "REVSYNC_ZUORA_CALLOUT_SECRET=from-make-dev\n", encoding="utf-8"
    )
    (tmp_path / ".env").write_text("REVSYNC_ERP=sap\n", encoding="utf-8")
    monkeypatch.chdir(tmp_path)

    settings = Settings()

    assert settings.zuora_callout_secret is None
    assert settings.erp == "netsuite"
    # Outside the tests the same files configure revsync, as `make dev` relies on.
    configured = Settings(_env_file=(DEV_SECRETS_FILE, ".env"))
    assert configured.zuora_callout_secret is not None
    assert configured.zuora_callout_secret.get_secret_value() == "from-make-dev"
    assert configured.erp == "sap"


def test_no_developer_variable_reaches_the_tests():
    # The one the suite sets itself: its own shadow store (tests/conftest.py).
    own = {"REVSYNC_SHADOW_STORE"}
    leaked = [n for n in os.environ if n.startswith(("REVSYNC_", "OTEL_")) and n not in own]
    assert not leaked
    assert "revsync-tests-" in os.environ["REVSYNC_SHADOW_STORE"]  # never the checkout's
