"""Docs that cannot go stale silently."""

from __future__ import annotations

import re
from pathlib import Path

from revsync.settings import Settings

ROOT = Path(__file__).resolve().parent.parent


def test_every_setting_is_documented_and_nothing_else():
    documented = set(
        re.findall(r"`(REVSYNC_[A-Z0-9_]+)`", (ROOT / "docs/configuration.md").read_text())
    )
    actual = {f"REVSYNC_{name.upper()}" for name in Settings.model_fields}
    assert actual - documented == set(), "settings missing from docs/configuration.md"
    assert documented - actual == set(), "docs/configuration.md names settings that do not exist"


def test_readme_quick_start_is_the_two_make_targets():
    readme = (ROOT / "README.md").read_text()
    makefile = (ROOT / "Makefile").read_text()
    assert "make dev" in readme
    assert "make test" in readme
    assert re.search(r"^dev:", makefile, re.M)
    assert re.search(r"^test:", makefile, re.M)
    assert "make test" in (ROOT / ".ci/run").read_text()
