"""What the tests (and the reliability benches) share: tiny models, small workspaces, a toy tuning setup, and
polling that waits for a condition instead of sleeping."""

from __future__ import annotations

import asyncio
import inspect
import time
from typing import Any, Callable


def wait_until(get: Callable[[], Any], ok: Callable[[Any], Any] = bool, timeout: float = 30.0,
               every: float = 0.05) -> Any:
    """Poll `get()` until `ok(value)`; return that value, or fail with the last one."""
    end = time.monotonic() + timeout
    while True:
        value = get()
        if ok(value):
            return value
        assert time.monotonic() < end, f"not within {timeout}s: {value}"
        time.sleep(every)


async def eventually(get: Callable[[], Any], ok: Callable[[Any], Any] = bool, timeout: float = 10.0,
                     interval: float = 0.05) -> Any:
    """The same inside an event loop: `get()` may return an awaitable."""
    end = time.monotonic() + timeout
    while True:
        value = get()
        if inspect.isawaitable(value):
            value = await value
        if ok(value):
            return value
        assert time.monotonic() < end, f"not within {timeout}s: {value}"
        await asyncio.sleep(interval)
