"""`make demo` at small scale: the scripted day runs over HTTP against its own stack and ends with a
clean reconciliation, narrated in English and, with ``DEMO_LANG=zh``, in Chinese (the services'
answers too). Any surprise on the way makes the script exit 1 with the reason."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

from chain.paths import PROJECT_ROOT

pytestmark = pytest.mark.slow


def _play(lang: str | None) -> str:
    env = {k: v for k, v in os.environ.items() if k != "DEMO_LANG"}
    if lang:
        env["DEMO_LANG"] = lang
    done = subprocess.run(
        [sys.executable, "scripts/demo.py", "--scale", "small"],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=900,
        env=env,
    )
    assert done.returncode == 0, f"{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done.stdout


def test_the_demo_day_plays_through_and_reconciles_clean() -> None:
    out = _play(None)
    for chapter in (
        "prepaid packages",
        "gig workers",
        "payment code",
        "voucher campaign",
        "canteen welfare",
        "village collective",
        "hard-wallet cards",
        "A resident's own channel",
        "downloads the day's statement",
        "Unattended devices",
        "Utility bills",
        "The closed-loop park",
        "reconciles",
    ):
        assert chapter in out, out
    assert "every customer got the 8 unused sessions back" in out
    assert "the platform approving its own batch is refused" in out
    assert "a payment signed with it afterwards: card-lost" in out
    assert "the card is blocked" in out
    # the resident's chapter: the wage seen from the holder's channel, the mandate revoked, the
    # card reported lost, the balance on the recovered wallet (the wage less the ride and the card)
    assert "sees ¥180.50: the wage from Gig platform (salary)" in out, out
    assert "and the evening ride's pull: The mandate was revoked" in out
    assert "is reported lost from the phone" in out
    assert "the new wallet holds ¥127.50, the old one is retired" in out
    assert "the holder key left on the lost phone: Wallet retired" in out
    assert "asking ¥14.00 more: The refunds would exceed what was paid for this bill" in out
    assert "settlement file (CSV): total," in out
    # the spot-check robot: every code and terminal probed, all passed (e.g. 4/4, codes 1, terminals 3)
    assert re.search(r" (\d+)/\1 passed, coverage 100% \(codes 1, terminals [1-9]\d*\)", out), out
    assert "completes with ¥6.50" in out and "Xiao Li is charged nothing" in out
    assert "a second run pays nothing" in out and "equal to what its wallet received on chain" in out
    assert "welfare each; posted again: nothing changed" in out and "retention ratio " in out
    assert "at a town supermarket: This merchant is not on the programme's list" in out
    assert "pulling it again: This order reference was paid already" in out
    assert "\nverdict: clean\n" in out


def test_the_demo_narrates_in_chinese_with_demo_lang_zh() -> None:
    out = _play("zh")
    for chapter in (
        "预付资金监管",
        "代发工资",
        "聚合支付码",
        "消费红包",
        "工会福利",
        "三资监管",
        "硬钱包",
        "居民自己的渠道",
        "无人值守设备",
        "水电燃气缴费",
        "园区资金闭环",
        "对账",
    ):
        assert chapter in out, out
    assert "每位顾客未用的 8 节课全部退回" in out
    # the services answered in Chinese too: the maker-checker refusal's title by its slug
    assert "平台复核自己的批次被拒绝：批次创建人不能复核自己的批次" in out, out
    assert "之后用这张卡签名的支付：card-lost" in out
    assert "晚上的扣款：该钱包快付授权已撤销" in out, out
    assert "新钱包余额 ¥127.50，旧钱包已注销" in out
    assert "遗失手机上的持有人密钥：钱包已停用：已恢复到新钱包" in out
    assert "\n结论：一致（verdict: clean）\n" in out
    assert "the card is blocked" not in out
