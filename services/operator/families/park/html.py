"""The park report as one self-contained HTML page, in zh-CN or English (``?format=html``,
``?lang=zh|en`` or ``Accept-Language``, as the reconciliation's page)."""

from __future__ import annotations

import html

from services.common import humanize, i18n
from services.operator.families.park.schemas import Money, ParkReport

ZH_TEXT = {
    "Park report": "园区资金闭环报告",
    "Area": "街道",
    "As of block": "截至区块",
    "Wages and subsidies paid into staff wallets": "发放至园区员工钱包的工资与补贴",
    "Spent inside the park": "在园区内消费",
    "Retention ratio": "园区留存率",
    "Fee income": "园区租金与费用收入",
    "By tenant": "按入驻企业",
    "By merchant category": "按商户类别",
    "By merchant": "按商户",
    "Tenant": "企业",
    "Paid in": "发放",
    "Spent inside": "园内消费",
    "Fees paid": "缴纳费用",
    "Category": "类别",
    "Merchants": "商户数",
    "Merchant": "商户",
    "Takings from staff": "员工消费收入",
}


def render(report: ParkReport, lang: str) -> str:
    def t(text: str) -> str:
        return html.escape(ZH_TEXT.get(text, text) if lang == i18n.ZH else text)

    def m(value: Money) -> str:
        return html.escape(humanize.money(value.fen, lang))

    def pct(value: float | None) -> str:
        return "—" if value is None else f"{value * 100:.2f}%"

    def table(head: list[str], rows: list[list[str]]) -> str:
        th = "".join(f"<th>{t(h)}</th>" for h in head)
        body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in r) + "</tr>" for r in rows)
        return f"<table><thead><tr>{th}</tr></thead><tbody>{body}</tbody></table>"

    e = html.escape
    tenants = table(
        ["Tenant", "Paid in", "Spent inside", "Retention ratio", "Fees paid"],
        [
            [e(x.name), m(x.paid_in), m(x.spent_inside), pct(x.retention_ratio), m(x.fees_paid)]
            for x in report.by_tenant
        ],
    )
    categories = table(
        ["Category", "Merchants", "Spent inside"],
        [[str(c.category), str(c.merchants), m(c.spent_inside)] for c in report.by_category],
    )
    merchants = table(
        ["Merchant", "Category", "Takings from staff"],
        [[e(x.name), str(x.category), m(x.takings_from_staff)] for x in report.by_merchant],
    )
    return f"""<!doctype html>
<html lang="{lang}"><head><meta charset="utf-8"><meta name="referrer" content="no-referrer">
<title>{t("Park report")}: {e(report.name)}</title>
<style>body{{font-family:sans-serif;margin:2em}}table{{border-collapse:collapse;margin:1em 0}}
td,th{{border:1px solid #ccc;padding:.3em .6em;text-align:right}}td:first-child{{text-align:left}}</style>
</head><body><h1>{t("Park report")}: {e(report.name)}</h1>
<p>{t("Area")}: {e(report.area)} · {t("As of block")} {report.as_of_block}</p>
<dl><dt>{t("Wages and subsidies paid into staff wallets")}</dt><dd>{m(report.paid_in)}</dd>
<dt>{t("Spent inside the park")}</dt><dd>{m(report.spent_inside)}</dd>
<dt>{t("Retention ratio")}</dt><dd id="retention">{pct(report.retention_ratio)}</dd>
<dt>{t("Fee income")}</dt><dd>{m(report.fee_income)}</dd></dl>
<h2>{t("By tenant")}</h2>{tenants}<h2>{t("By merchant category")}</h2>{categories}
<h2>{t("By merchant")}</h2>{merchants}</body></html>
"""
