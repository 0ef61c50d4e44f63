"""Assertions shared by the test suites."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from chain.exceptions import ContractError


def assert_reverts(call: Callable[[], Any], name: str, *args: Any) -> ContractError:
    """``call`` must revert with custom error ``name`` and exactly these arguments."""
    with pytest.raises(ContractError) as info:
        call()
    err = info.value
    assert err.name == name, f"expected {name}{args}, got {err.signature}"
    if args:
        assert err.args_tuple == tuple(args), f"expected {name}{args}, got {err.signature}"
    return err
