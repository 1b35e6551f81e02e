"""`revsync status` on a parked saga prints the `revsync resolve` command to decide with; the
command it prints must be one the CLI accepts (the runbooks tell operators to copy it)."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from decimal import Decimal

import typer
from typer.core import TyperGroup

from domain.saga import ParkedState, QuoteToCashStatus, Step, allowed_resolutions
from domain.stages import OrderStage
from revsync.cli import app, render_status


def parked_status(step: Step) -> QuoteToCashStatus:
    now = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
    return QuoteToCashStatus(
        workflow_id="q2c-Q-1042",
        quote_id="Q-1042",
        account_id="0015e00000AcmeUS1",
        amount=Decimal("1200.00"),
        currency="USD",
        stage=OrderStage.NEEDS_ATTENTION,
        parked=ParkedState(
            step=step, reason="CRM refused", since=now, allowed=allowed_resolutions(step)
        ),
    )


def test_the_printed_resolve_command_uses_only_options_resolve_has() -> None:
    hint = render_status(parked_status(Step.UPDATE_CRM))
    (command,) = re.findall(r"decide with: (revsync resolve .+)", hint)
    resolve = typer.main.get_command(app)
    assert isinstance(resolve, TyperGroup)
    accepted = {opt for param in resolve.commands["resolve"].params for opt in param.opts}
    printed = set(re.findall(r"--[a-z-]+", command))
    assert printed == {"--action", "--note"}
    assert printed <= accepted
    assert "{retry, skip}" in command  # the decisions update_crm allows
