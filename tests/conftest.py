"""Shared fixtures. No test may reach a network beyond loopback, or leave a process behind."""

from __future__ import annotations

import ipaddress
import socket
import time
from collections.abc import Iterator
from typing import Any

import psutil
import pytest

from rlm_async.environments.forkserver import ForkServer

_real_connect = socket.socket.connect


def _loopback_only(self: socket.socket, address: Any) -> Any:
    if self.family in (socket.AF_INET, socket.AF_INET6):
        host = address[0]
        if host != "localhost" and not ipaddress.ip_address(host).is_loopback:
            raise ConnectionRefusedError(f"tests may only connect to loopback, not {host}")
    return _real_connect(self, address)


@pytest.fixture(autouse=True)
def loopback_only(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(socket.socket, "connect", _loopback_only)


def live_children() -> list[psutil.Process]:
    """Our live descendants, except fork servers: those are kept for the whole session on purpose."""
    servers = ForkServer.pids()
    return [
        p
        for p in psutil.Process().children(recursive=True)
        if p.pid not in servers and p.status() != psutil.STATUS_ZOMBIE
    ]


@pytest.fixture(autouse=True)
def no_leaked_processes() -> Iterator[None]:
    before = {p.pid for p in live_children()}
    yield
    deadline = time.monotonic() + 5
    while (leaked := [p for p in live_children() if p.pid not in before]) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not leaked, f"processes left behind: {[(p.pid, p.cmdline()) for p in leaked]}"
