"""Complete a future from whichever side finished first (a worker thread, a reader thread, a callback)."""

from __future__ import annotations

import asyncio
import concurrent.futures
from typing import TypeVar

T = TypeVar("T")


def settle(future: asyncio.Future[T] | concurrent.futures.Future[T], result: T | BaseException) -> None:
    """Give ``future`` ``result`` — raised by its awaiter when it is an exception — unless it is already done."""
    if future.done():
        return
    if isinstance(result, BaseException):
        future.set_exception(result)
    else:
        future.set_result(result)
