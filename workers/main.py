"""Run one task queue's worker until SIGINT/SIGTERM, then shut down gracefully: stop
polling, let in-flight activities finish within the grace period."""

from __future__ import annotations

import asyncio
import signal

import structlog

from revsync.metrics import build_runtime, metrics_address
from revsync.settings import Settings
from revsync.temporal import connect
from workers.build import build_worker, new_http_client

log = structlog.get_logger("revsync.worker")


async def run_worker(queue: str, settings: Settings) -> None:
    client = await connect(settings, runtime=build_runtime(settings))
    async with new_http_client(settings) as http:
        worker = build_worker(queue, client, settings, http)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        log.info(
            "worker started",
            task_queue=queue,
            temporal=settings.temporal_address,
            metrics=None if settings.metrics_port is None else metrics_address(settings),
        )
        run = asyncio.create_task(worker.run())
        stopped = asyncio.create_task(stop.wait())
        done, _ = await asyncio.wait({run, stopped}, return_when=asyncio.FIRST_COMPLETED)
        if stopped in done:
            log.info("worker stopping", task_queue=queue)
            await worker.shutdown()
        else:
            stopped.cancel()
        await run
        log.info("worker stopped", task_queue=queue)
