"""SAP S/4HANA Cloud emulator, finance part (filled below)."""

from __future__ import annotations

from typing import Any


class FinanceBooks:
    def snapshot(self) -> dict[str, Any]:
        return {}


ROUTES: dict[tuple[str, str, str, bool], Any] = {}
