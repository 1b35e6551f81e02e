"""Activities heartbeat while they run, so that a worker killed mid-activity costs seconds.

Without heartbeats Temporal notices a dead worker only when the attempt's start-to-close
timeout (minutes) runs out; with a heartbeat timeout, as soon as heartbeats stop, and the retry
goes to another worker at once. The workflow sets the heartbeat timeout on every step; this
interceptor heartbeats, for every activity that has one, three times per timeout, so no
activity has to remember to.
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import timedelta
from typing import Any

from temporalio import activity
from temporalio.worker import (
    ActivityInboundInterceptor,
    ExecuteActivityInput,
    Interceptor,
)

# Send heartbeats on to the server at least this often (the SDK's throttle is otherwise 80% of
# the heartbeat timeout, which leaves a loaded machine little margin).
MAX_HEARTBEAT_THROTTLE = timedelta(seconds=5)


class HeartbeatInterceptor(Interceptor):
    def intercept_activity(self, next: ActivityInboundInterceptor) -> ActivityInboundInterceptor:
        return _Heartbeating(next)


class _Heartbeating(ActivityInboundInterceptor):
    async def execute_activity(self, input: ExecuteActivityInput) -> Any:
        timeout = activity.info().heartbeat_timeout
        if not timeout:
            return await self.next.execute_activity(input)
        beating = asyncio.create_task(_beat(timeout.total_seconds() / 3))
        try:
            return await self.next.execute_activity(input)
        finally:
            beating.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await beating


async def _beat(every_seconds: float) -> None:
    while True:
        await asyncio.sleep(every_seconds)
        activity.heartbeat()
