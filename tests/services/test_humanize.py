"""What people read (issue 21): money in yuan with the fen beside it, Beijing time, states and
roles by name, the glossary in one table that the README repeats, and every word of the dashboard
in Chinese."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest
from eth_utils import keccak

from services.common import humanize, i18n
from services.common.problems import CONTRACT_ERRORS
from services.operator.routes.dashboard import HERE, render_page

ROOT = HERE.parent.parent.parent


@pytest.mark.parametrize(
    ("fen", "en", "zh"),
    [
        (0, "¥0.00 (0 fen)", "¥0.00（0 分）"),
        (5, "¥0.05 (5 fen)", "¥0.05（5 分）"),
        (123450, "¥1,234.50 (123450 fen)", "¥1,234.50（123450 分）"),
        (-100, "-¥1.00 (-100 fen)", "-¥1.00（-100 分）"),
        (10**12, "¥10,000,000,000.00 (1000000000000 fen)", "¥10,000,000,000.00（1000000000000 分）"),
    ],
)
def test_money_in_yuan_with_the_fen_beside(fen: int, en: str, zh: str) -> None:
    assert humanize.money(fen) == en and humanize.money(fen, i18n.ZH) == zh


def test_times_in_beijing_time() -> None:
    assert humanize.beijing(0) == "1970-01-01T08:00:00+08:00"
    assert humanize.beijing(1_764_140_877) == "2025-11-26T15:07:57+08:00"  # 07:07:57 UTC
    assert humanize.beijing(datetime(2026, 11, 26, 16, 30, tzinfo=UTC)) == "2026-11-27T00:30:00+08:00"
    assert humanize.beijing(datetime(2026, 11, 26, 16, 30)) == "2026-11-27T00:30:00+08:00"  # naive: UTC


def test_states_and_roles_by_name() -> None:
    batch = "0x" + "ab" * 32
    detail = humanize.contract_detail("DisburseWrongStatus", {"id": batch, "expected": 2, "actual": 1})
    assert detail == f"DisburseWrongStatus(id={batch}, expected=Approved, actual=Draft)"
    zh = humanize.contract_detail("DisburseWrongStatus", {"id": batch, "expected": 2, "actual": 1}, i18n.ZH)
    assert zh == f"DisburseWrongStatus(id={batch}, expected=已复核, actual=草稿)"
    card = "0x" + "12" * 20
    assert humanize.contract_detail("HardWalletWrongStatus", {"card": card, "expected": 1, "actual": 3}) == (
        f"HardWalletWrongStatus(card={card}, expected=Active, actual=Lost)"
    )
    assert humanize.contract_detail("VoucherWrongMode", {"id": 4, "expected": 2}) == (
        "VoucherWrongMode(id=4, expected=OpenEnrolment)"
    )
    assert humanize.enum_name("Disbursement.Status", 9) == "9"  # an unknown value stays a number
    role = "0x" + keccak(text="ISSUER_ROLE").hex()
    detail = humanize.contract_detail("AccessControlUnauthorizedAccount", {"account": card, "role": role})
    assert detail == f"AccessControlUnauthorizedAccount(account={card}, role=ISSUER_ROLE)"
    expires = humanize.contract_detail("CollectiveProposalExpired", {"proposalId": 3, "expiresAt": 0})
    assert expires == "CollectiveProposalExpired(proposalId=3, expiresAt=0)"  # 0 is no time
    expires = humanize.contract_detail(
        "CollectiveProposalExpired", {"proposalId": 3, "expiresAt": 1_764_140_877}
    )
    assert expires == "CollectiveProposalExpired(proposalId=3, expiresAt=2025-11-26T15:07:57+08:00)"


def test_every_enum_argument_of_the_contracts_errors_is_decoded() -> None:
    """Each custom error with an enum argument (read from the compiled ABIs) has its decoding."""
    from chain.compiler import compile_contracts

    compiled = compile_contracts()
    found = set()
    for artifact in compiled.artifacts.values():
        for item in artifact.abi:
            if item.get("type") != "error":
                continue
            for arg in item["inputs"]:
                if str(arg.get("internalType", "")).startswith("enum "):
                    found.add((item["name"], arg["name"]))
    assert found and found <= set(humanize.ERROR_ENUMS), found - set(humanize.ERROR_ENUMS)
    assert {name for name, _ in found} <= set(CONTRACT_ERRORS)


def test_the_readme_glossary_is_the_one_table() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    start = readme.index("| 中文 | English (API) | What |")
    rows = []
    for line in readme[start:].splitlines()[2:]:
        if not line.startswith("|"):
            break
        rows.append(tuple(cell.strip() for cell in line.strip("|").split(" | ")))
    assert rows == [tuple(row) for row in i18n.GLOSSARY]


def test_every_word_of_the_dashboard_has_its_chinese() -> None:
    html = (HERE / "index.html").read_text(encoding="utf-8")
    words = {" ".join(w.split()) for w in re.findall(r"\{\{(.+?)\}\}", html, re.S)}
    assert words and words <= set(i18n.UI_ZH), words - set(i18n.UI_ZH)
    script = (HERE / "dashboard.js").read_text(encoding="utf-8")
    said = set(re.findall(r'\bT\("([^"]+)"\)', script))
    assert said and said <= set(i18n.UI_ZH), said - set(i18n.UI_ZH)
    zh = render_page(i18n.ZH)
    assert "{{" not in zh and "@@" not in zh and '<html lang="zh-CN">' in zh
    assert "预付资金监管" in zh and "聚合支付码" in zh and "三资监管" in zh
    en = render_page(i18n.EN)
    assert "{{" not in en and "Prepaid escrow" in en and "预付资金监管" not in en.split("</head>")[1]
    # the glossary's words are the page's words for the same things
    glossary = {zh_term for zh_term, _, _ in i18n.GLOSSARY}
    assert {"预付资金监管", "聚合支付码", "三资监管"} <= glossary
    assert i18n.UI_ZH["Disbursements"] in {t for t in glossary}
