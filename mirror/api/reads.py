"""One thread for the API's short database reads.

Sync endpoints run on Starlette's pool of up to 40 threads. On a 2-core host, four clients reading
`/api/v1/exceptions` kept four of them contending with the event loop for the GIL: the handoffs
cost more than the reads (bench/api.py: 545 req/s for a 0.4 ms read, vs 740 on one thread, with a
quieter p99). Reads are a few ms at most and release the GIL while the database works, so one
thread keeps up; writes and pre-checks (which wait on the network) stay on Starlette's pool.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")

_READER = ThreadPoolExecutor(max_workers=1, thread_name_prefix="airlock-api-read")


async def run_read(function: Callable[..., T], /, *args: object) -> T:
    """`function(*args)` on the read thread, with the caller's context (request id for logs)."""
    context = contextvars.copy_context()
    return await asyncio.get_running_loop().run_in_executor(_READER, context.run, function, *args)
