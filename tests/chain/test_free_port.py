"""``free_port`` inside ``XCPAY_PORT_RANGE``: on a shared machine, started nodes and services stay in
the ports their run was given; a range with no free port is an error, not a port outside it."""

from __future__ import annotations

import socket
from contextlib import ExitStack

import pytest

from chain.processes import free_port

RANGE = (43990, 43993)


class TestFreePort:
    def test_without_a_range_any_free_port(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.delenv("XCPAY_PORT_RANGE", raising=False)
        port = free_port()
        with socket.socket() as s:
            s.bind(("127.0.0.1", port))

    def test_picks_a_free_port_of_the_range_only(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("XCPAY_PORT_RANGE", f"{RANGE[0]}-{RANGE[1]}")
        with ExitStack() as stack:
            for port in range(RANGE[0], RANGE[1]):  # all but the last one taken
                s = stack.enter_context(socket.socket())
                try:
                    s.bind(("127.0.0.1", port))
                except OSError:
                    pytest.skip(f"port {port} is in use by something else")
            assert free_port() == RANGE[1]

    def test_a_full_range_is_an_error(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("XCPAY_PORT_RANGE", f"{RANGE[0]}-{RANGE[0]}")
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", RANGE[0]))
            except OSError:
                pytest.skip(f"port {RANGE[0]} is in use by something else")
            with pytest.raises(RuntimeError, match="no free port in XCPAY_PORT_RANGE"):
                free_port()
