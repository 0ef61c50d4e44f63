"""The park report as one self-contained HTML page, in zh-CN or English (``?format=html``,
``?lang=zh|en`` or ``Accept-Language``, as the reconciliation's page). The words are
services/common/i18n.py's (``UI_ZH``), in the glossary's terms."""

from __future__ import annotations

import html

from services.common import humanize, i18n
from services.operator.families.park.schemas import Money, ParkReport

TENANT_HEAD = [
    "Tenant",
    "Paid in",
    "Spent inside",
    "Retention ratio",
    "Earmarked granted",
    "Earmarked spent",
    "Fees paid",
]
ACTIVITY_HEAD = [
    "Day",
    "Tenant",
    "Card taps at the park's terminals",
    "Card tap amount",
    "Door entries",
    "Door denials",
]


def render(report: ParkReport, lang: str) -> str:
    def t(text: str) -> str:
        return html.escape(i18n.ui(text, lang))

    def m(value: Money) -> str:
        return html.escape(humanize.money(value.fen, lang))

    def pct(value: float | None) -> str:
        return "—" if value is None else f"{value * 100:.2f}%"

    def table(head: list[str], rows: list[list[str]], id_: str) -> str:
        th = "".join(f"<th>{t(h)}</th>" for h in head)
        body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in r) + "</tr>" for r in rows)
        return f'<table id="{id_}"><thead><tr>{th}</tr></thead><tbody>{body}</tbody></table>'

    e = html.escape
    w = report.earmarked
    names = {x.tenant: x.name for x in report.by_tenant}
    tenants = table(
        TENANT_HEAD,
        [
            [
                e(x.name),
                m(x.paid_in),
                m(x.spent_inside),
                pct(x.retention_ratio),
                m(x.earmarked_granted),
                m(x.earmarked_spent),
                m(x.fees_paid),
            ]
            for x in report.by_tenant
        ],
        "tenants",
    )
    categories = table(
        ["Category", "Merchants", "Spent inside", "Earmarked spent"],
        [
            [str(c.category), str(c.merchants), m(c.spent_inside), m(c.earmarked_spent)]
            for c in report.by_category
        ],
        "categories",
    )
    merchants = table(
        ["Merchant", "Category", "Spent inside", "Earmarked spent", "Takings from staff"],
        [
            [e(x.name), str(x.category), m(x.spent_inside), m(x.earmarked_spent), m(x.takings_from_staff)]
            for x in report.by_merchant
        ],
        "merchants",
    )
    activity = table(
        ACTIVITY_HEAD,
        [
            [
                e(a.day),
                e(names.get(a.tenant, a.tenant)) if a.tenant else t("others"),
                str(a.card_taps),
                m(a.card_tap_fen),
                str(a.door_entries),
                str(a.door_denied),
            ]
            for a in report.activity
        ],
        "activity",
    )
    programme = "—" if w.programme is None else str(w.programme)
    return f"""<!doctype html>
<html lang="{lang}"><head><meta charset="utf-8"><meta name="referrer" content="no-referrer">
<title>{t("Park report")}: {e(report.name)}</title>
<style>body{{font-family:sans-serif;margin:2em}}table{{border-collapse:collapse;margin:1em 0}}
td,th{{border:1px solid #ccc;padding:.3em .6em;text-align:right}}td:first-child{{text-align:left}}</style>
</head><body><h1>{t("Park report")}: {e(report.name)}</h1>
<p>{t("Area")}: {e(report.area)} · {t("As of block")} {report.as_of_block}</p>
<h2>{t("Free money")}</h2>
<dl><dt>{t("Wages and subsidies paid into staff wallets")}</dt><dd>{m(report.paid_in)}</dd>
<dt>{t("Spent inside the park")}</dt><dd>{m(report.spent_inside)}</dd>
<dt>{t("Retention ratio of free money")}</dt><dd id="retention">{pct(report.retention_ratio)}</dd>
<dt>{t("Fee income")}</dt><dd>{m(report.fee_income)}</dd></dl>
<h2>{t("Earmarked money (welfare vouchers)")}</h2>
<dl id="earmarked"><dt>{t("Welfare programme")}</dt><dd>{programme}</dd>
<dt>{t("Granted to staff")}</dt><dd>{m(w.granted)}</dd>
<dt>{t("Spent at the park's merchants")}</dt><dd>{m(w.spent_inside)}</dd>
<dt>{t("Unspent")}</dt><dd>{m(w.unspent)}</dd>
<dt>{t("Returned at expiry")}</dt><dd>{m(w.returned)}</dd>
<dt>{t("Expired")}</dt><dd>{t("yes") if w.expired else t("no")}</dd>
<dt>{t("Spend ratio")}</dt><dd>{pct(w.spend_ratio)}</dd>
<dt>{t("Other earmarked money spent inside")}</dt><dd>{m(w.other_spent_inside)}</dd></dl>
<h2>{t("Card taps and door access")}</h2>
<dl><dt>{t("Card taps at the park's terminals")}</dt><dd id="card-taps">{report.card_taps}</dd>
<dt>{t("Card tap amount")}</dt><dd>{m(report.card_tap_fen)}</dd>
<dt>{t("Door entries")}</dt><dd id="door-entries">{report.door_entries}</dd>
<dt>{t("Door denials")}</dt><dd>{report.door_denied}</dd></dl>{activity}
<h2>{t("By tenant")}</h2>{tenants}<h2>{t("By merchant category")}</h2>{categories}
<h2>{t("By merchant")}</h2>{merchants}</body></html>
"""
