"""`make demo` at small scale: the scripted day runs over HTTP against its own stack and ends with a
clean reconciliation. Any surprise on the way makes the script exit 1 with the reason."""

from __future__ import annotations

import subprocess
import sys

import pytest

from chain.paths import PROJECT_ROOT

pytestmark = pytest.mark.slow


def test_the_demo_day_plays_through_and_reconciles_clean() -> None:
    done = subprocess.run(
        [sys.executable, "scripts/demo.py", "--scale", "small"],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, f"{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    out = done.stdout
    for chapter in (
        "prepaid packages",
        "gig workers",
        "payment code",
        "voucher campaign",
        "canteen welfare",
        "village collective",
        "hard-wallet cards",
        "reconciles",
    ):
        assert chapter in out, out
    assert "every customer got the 8 unused sessions back" in out
    assert "the platform approving its own batch is refused" in out
    assert "a payment signed with it afterwards: card-lost" in out
    assert "the card is blocked" in out
    assert "\nverdict: clean\n" in out
