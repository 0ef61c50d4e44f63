"""Problem titles and details in Chinese (zh-CN) or English, chosen by ``Accept-Language``.

Most of the pilot's operators read Chinese first. A problem's ``type`` (the slug) is the machine
field and never changes; its ``title``, and its ``detail`` where it is one of the common fixed
texts below, are given in zh-CN when the request prefers Chinese (``Accept-Language: zh-CN``,
``zh``, ``zh-Hans``… ranked above English by q-value), in English otherwise; the answer says which
in ``Content-Language``. Titles are translated by slug (one meaning per slug, however the English
words vary between routes); the terms are the README's glossary's.
"""

from __future__ import annotations

import re
from typing import Any

ZH, EN = "zh-CN", "en"

# Problem titles by slug: the commonest answers (authentication, roles, validation, idempotency,
# limits, outages) and the commonest refusals of the money rules.
TITLES_ZH: dict[str, str] = {
    "missing-api-key": "缺少 API 密钥",
    "invalid-api-key": "API 密钥无效",
    "forbidden-role": "此密钥的角色无权执行此操作",
    "not-yours": "此密钥只能读取自己的记录",
    "not-your-merchant": "商户密钥只能操作本商户",
    "not-your-payer": "复核人只能操作其所属付款方的批次",
    "not-your-package": "此预付套餐属于其他商户",
    "not-your-collective": "不是该集体经济组织的成员",
    "invalid-request": "请求无效",
    "invalid-cursor": "分页游标无效",
    "bad-request": "请求无法读取",
    "not-found": "未找到",
    "method-not-allowed": "不支持此请求方法",
    "missing-idempotency-key": "缺少幂等键（Idempotency-Key）",
    "invalid-idempotency-key": "幂等键（Idempotency-Key）无效",
    "idempotency-key-reused": "幂等键已用于另一个请求",
    "idempotency-conflict": "幂等键冲突",
    "body-too-large": "请求体过大",
    "json-too-deep": "JSON 请求体嵌套过深",
    "rate-limited": "请求过于频繁",
    "node-unavailable": "区块链节点不可用",
    "transaction-timeout": "交易未能及时上链",
    "database-unavailable": "数据库不可用",
    "internal-error": "内部错误",
    "unstorable-value": "数据库无法保存该值",
    "wallet-not-found": "未找到钱包",
    "wallet-not-registered": "钱包未登记",
    "wallet-already-registered": "钱包已登记",
    "wallet-frozen": "钱包已冻结",
    "wallet-not-frozen": "钱包未冻结",
    "insufficient-balance": "余额不足",
    "tier-balance-cap-exceeded": "超过钱包等级的余额上限",
    "tier-payment-cap-exceeded": "超过钱包等级的单笔支付上限",
    "tier-daily-cap-exceeded": "超过钱包等级的日累计支付上限",
    "system-paused": "系统已暂停",
    "zero-amount": "金额必须大于零",
    "operation-not-found": "未找到该操作",
    "disbursement-not-found": "未找到代发批次",
    "batch-exists": "该批次编号已被使用",
    "invalid-payer": "付款方不是商户或机构钱包",
    "invalid-rows": "批次明细有误",
    "batch-not-approved": "批次尚未复核通过",
    "maker-checker": "批次创建人不能复核自己的批次",
    "payer-frozen": "付款方已冻结或未登记：批次等待中",
    "programme-not-found": "未找到消费红包活动",
    "package-not-found": "未找到预付套餐",
    "merchant-frozen": "商户钱包已冻结",
    "not-a-merchant-wallet": "不是已登记的商户钱包",
    "code-not-found": "未找到聚合支付码",
    "code-expired": "聚合支付码已过期",
    "code-already-paid": "该账单已支付",
    "reference-in-use": "该账单编号正被另一个支付码使用",
    "collective-not-found": "未找到集体经济组织",
    "proposal-not-found": "未找到支出提案",
    "card-not-found": "未找到硬钱包卡",
    "card-exists": "硬钱包卡已登记",
    "contract-error": "合约拒绝了此操作",
}

# Fixed details (exact English text) and a few templates with the values kept.
DETAILS_ZH: dict[str, str] = {
    "send the X-API-Key header": "请在 X-API-Key 请求头中提供 API 密钥",
    "unknown, revoked or expired": "密钥不存在、已吊销或已过期",
    "the error was logged": "错误已记入日志",
    "this request moves money or changes chain state; send an Idempotency-Key header": (
        "此请求会转移资金或改变链上状态：请提供 Idempotency-Key 请求头"
    ),
    "at most 200 characters": "最多 200 个字符",
    "the chain node did not answer; retry later (with the same Idempotency-Key)": (
        "区块链节点未响应：请稍后使用同一幂等键重试"
    ),
    "the request was not completed; retry it later with the same Idempotency-Key": (
        "请求未完成：请稍后使用同一幂等键重试"
    ),
    "not a cursor this service issued": "不是本服务签发的分页游标",
}
DETAIL_TEMPLATES_ZH: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"^role '([\w-]+)' is not one of (\[.*\])$"), r"角色 '\1' 不在允许的角色 \2 之中"),
    (re.compile(r"^role '([\w-]+)' does not own this$"), r"角色 '\1' 的密钥不拥有此记录"),
    (
        re.compile(r"^too many requests from this (client address|API key); retry after (\d+) s$"),
        r"请求过于频繁：请 \2 秒后重试",
    ),
    (re.compile(r"^at most (\d+) bytes here$"), r"此处最多 \1 字节"),
    (re.compile(r"^not a cursor of this listing \(([\w-]+)\)$"), r"不是此列表（\1）的分页游标"),
    (
        re.compile(r"^key '(.*)' was first used for another ([\w.]+) request$"),
        r"幂等键 '\1' 已用于另一个 \2 请求",
    ),
]

_TAG = re.compile(r"^\s*([A-Za-z]{1,8}(?:-[A-Za-z0-9]{1,8})*|\*)\s*(?:;\s*q\s*=\s*([0-9.]+))?\s*$")


def preferred(accept_language: str | None) -> str:
    """``zh-CN`` when the header ranks a Chinese tag above every English one (and above ``*``
    for English), else ``en``; a malformed part is skipped, never an error."""
    best: dict[str, float] = {}
    for part in (accept_language or "")[:500].split(","):
        m = _TAG.match(part)
        if not m:
            continue
        try:
            q = float(m.group(2)) if m.group(2) is not None else 1.0
        except ValueError:
            continue
        tag = m.group(1).lower()
        lang = "zh" if tag.split("-")[0] == "zh" else "en" if tag.split("-")[0] in ("en", "*") else None
        if lang is not None and q > 0:
            best[lang] = max(best.get(lang, 0.0), q)
    return ZH if best.get("zh", 0.0) > best.get("en", 0.0) else EN


def detail_zh(detail: str) -> str | None:
    if detail in DETAILS_ZH:
        return DETAILS_ZH[detail]
    for pattern, template in DETAIL_TEMPLATES_ZH:
        if pattern.match(detail):
            return pattern.sub(template, detail)
    return None


def localize(doc: dict[str, Any], lang: str) -> dict[str, Any]:
    """The problem document ``doc`` in ``lang`` (in place; returned): title by slug, detail when
    it is a known text. Unknown ones stay in English."""
    if lang != ZH:
        return doc
    slug = str(doc.get("type", "")).rsplit(":", 1)[-1]
    if slug in TITLES_ZH:
        doc["title"] = TITLES_ZH[slug]
    detail = doc.get("detail")
    if isinstance(detail, str) and (zh := detail_zh(detail)) is not None:
        doc["detail"] = zh
    return doc


def answer_language(doc: dict[str, Any], accept_language: str | None) -> str:
    """The language the answer is given in: zh-CN when preferred and its title is known."""
    slug = str(doc.get("type", "")).rsplit(":", 1)[-1]
    return ZH if preferred(accept_language) == ZH and slug in TITLES_ZH else EN
