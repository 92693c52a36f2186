"""Sandbox fixtures: real bubblewrap and real podman, driven from synchronous tests on one event loop."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
from sandbox_helpers import BACKENDS, Box, assert_nothing_left, make_sandbox


@pytest.fixture(scope="module")
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    loop = asyncio.new_event_loop()
    yield loop
    loop.close()


@pytest.fixture(scope="module", params=BACKENDS)
def shared(request: pytest.FixtureRequest, loop: asyncio.AbstractEventLoop) -> Iterator[Box]:
    """One started sandbox per backend, shared by a module's tests that leave it usable."""
    box = Box(loop, make_sandbox(request.param, request), request.param)
    box.run(box.sandbox.start())
    yield box
    box.run(box.sandbox.stop())


@pytest.fixture(params=BACKENDS)
def fresh(request: pytest.FixtureRequest, loop: asyncio.AbstractEventLoop) -> Iterator[Any]:
    """``fresh(**config_overrides)`` starts a new sandbox for this test; all are stopped afterwards and
    the test fails if any process or container of them is left."""
    boxes: list[Box] = []

    def start(**overrides: Any) -> Box:
        box = Box(loop, make_sandbox(request.param, request, **overrides), request.param)
        box.run(box.sandbox.start())
        boxes.append(box)
        return box

    yield start
    for box in boxes:
        box.run(box.sandbox.stop())
    assert_nothing_left(boxes)
