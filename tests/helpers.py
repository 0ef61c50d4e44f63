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


def fast_profile_sizes(test_case: type, max_examples: int, steps: int) -> None:
    """Under `make test`'s ``fast`` hypothesis profile (tests/conftest.py), run this state machine's
    ``TestCase`` with these sizes instead of the profile's: the smallest, measured with
    ``XCPAY_RULE_REACH``, at which its derandomized sequences reach every rule (hypothesis enables
    a random subset of rules per sequence, so some machines need more sequences than others).
    Other profiles (``audit``) keep their own sizes."""
    from hypothesis import settings

    if settings.get_current_profile_name() == "fast":
        test_case.settings = settings(  # type: ignore[attr-defined]
            settings.default, max_examples=max_examples, stateful_step_count=steps
        )


def unrecoverable_signatures(signature: bytes) -> list[bytes]:
    """Card signatures no signer can be recovered from (OpenZeppelin's ECDSA.tryRecover finds none):
    r and s zero, r and s all ones (beyond the curve order), r and s the order itself, and the
    high-s twin of ``signature`` (a genuine r || s || v)."""
    # secp256k1's group order, written out here rather than taken from chain/ (the code under test)
    N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
    s = int.from_bytes(signature[32:64], "big")
    high_s = signature[:32] + (N - s).to_bytes(32, "big") + bytes([55 - signature[64]])
    return [bytes(64) + b"\x1b", b"\xff" * 64 + b"\x1b", N.to_bytes(32, "big") * 2 + b"\x1c", high_s]
