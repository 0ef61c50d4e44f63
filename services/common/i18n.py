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
    "json-duplicate-key": "JSON 请求体中的键重复",
    "unexpected-body": "此操作不接受请求体",
    "unknown-query-parameter": "此接口不接受该查询参数",
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
    "exception-already-retried": "此异常发放已被重新发放",
    "payer-frozen": "付款方已冻结或未登记：批次等待中",
    "programme-not-found": "未找到消费红包活动",
    "package-not-found": "未找到预付套餐",
    "merchant-frozen": "商户钱包已冻结",
    "not-a-merchant-wallet": "不是已登记的商户钱包",
    "code-not-found": "未找到聚合支付码",
    "code-expired": "聚合支付码已过期",
    "code-already-paid": "该账单已支付",
    "reference-in-use": "该账单编号正被另一个支付码使用",
    "payer-is-merchant": "商户不能支付自己的收款码",
    "collective-not-found": "未找到集体经济组织",
    "proposal-not-found": "未找到支出提案",
    "card-not-found": "未找到硬钱包卡",
    "card-exists": "硬钱包卡已登记",
    "card-is-holder": "硬钱包卡的密钥不能是持有人自己的钱包",
    "card-is-contract": "硬钱包卡的密钥不能是合约地址",
    "card-is-wallet": "硬钱包卡的密钥不能是已登记的钱包",
    "card-key-reserved": "硬钱包卡的密钥不能是本平台自身的账户或预编译合约地址",
    "wallet-is-card": "硬钱包卡的密钥不能登记为钱包",
    "contract-error": "合约拒绝了此操作",
    "identity-wallet-limit": "该身份在此等级的个人钱包数已达上限",
    "invalid-personal-wallet-limit": "个人钱包上限无效",
    "no-personal-wallet": "未找到以此身份登记的个人钱包",
    "identity-ambiguous": "以此身份登记的个人钱包不止一个",
    "amount-frozen": "部分余额已被冻结，不能转出",
    "wallet-retired": "钱包已停用：已恢复到新钱包",
    "recovery-pending": "此钱包已有待审批的恢复申请",
    "invalid-amount": "金额无效",
    "case-number-required": "请提供案号",
    "hold-not-active": "该钱包上没有此项有效冻结",
    "hold-not-found": "未找到此项冻结",
    "proposal-not-pending": "该裁定或恢复申请不在待审状态",
    "checker-is-maker": "复核人须是与发起人不同的监管密钥",
    "recovery-of-family-wallet": "合约钱包不能恢复",
    "evidence-required": "请提供身份核验证明",
    "court-order-not-found": "未找到司法划扣令",
    "recovery-not-found": "未找到钱包恢复申请",
    "over-identity-cap": "超过每人限额：此身份的钱包已领取",
    "second-regulator-missing": "未配置第二个监管签名密钥",
    "admin-key-missing": "未配置合约管理员签名密钥",
    # the holder's channel (a resident's own routes)
    "mandate-revoked": "该钱包快付授权已撤销",
    "mandate-not-found": "未找到钱包快付授权",
    "card-wrong-status": "此卡当前状态不能进行该操作",
    "package-closed": "预付套餐已结束",
    "leaf-not-found": "未找到此项红包",
    "already-claimed": "已领取过",
    "row-not-found": "未找到此发放行",
    "row-not-claimable": "此发放行目前无可领取的款项",
    # merchants' refunds, statements and spot checks (issue 23)
    "refund-exceeds-payment": "退款总额将超过该笔账单的实付金额",
    "refund-payer-frozen": "付款方钱包已冻结：退款需等待解冻",
    "payment-not-refundable": "只有已确认的支付可以退款",
    "payment-not-found": "该支付码没有这笔支付",
    "card-payment-not-found": "未找到此卡此序号的已结算支付",
    "refund-not-found": "未找到退款",
    "refund-payment-not-recorded": "该笔支付尚未登记可退款",
    "refund-payment-recorded": "该笔支付已登记",
    "refund-invalid-payment": "支付登记的金额或当事方无效",
    "refund-duplicate-reference": "该退款编号已使用",
    "day-in-future": "该日期尚未开始",
    # the closed-loop park (issue 23)
    "park-exists": "已有同一编号但文件不同的园区",
    "park-not-found": "未找到园区",
    "park-wallet-taken": "园区文件中的钱包已属于另一个园区",
    "park-wallet-frozen": "园区文件中的钱包已冻结",
    "park-wallet-held": "园区文件中的钱包有冻结（止付）金额",
    "park-wallet-not-registered": "园区文件中的钱包未登记",
    "park-wallet-wrong-kind": "园区文件中的钱包类型不符",
    # two-tier operation (issue 24)
    "reserve-exceeded": "运营机构的准备金不足以支持此次发行",
    "reserve-below-outstanding": "准备金不能低于该机构已发行在外的数额",
    "institution-not-found": "未找到运营机构",
    "not-an-institution": "该签名密钥不属于任何运营机构",
    "signer-taken": "该密钥已是某运营机构的签名密钥",
    "wallet-served-elsewhere": "该钱包由另一家运营机构服务",
    "institution-scope": "超出此密钥所属运营机构的范围（另一家机构的客户或平台数据）",
    "institution-key-unavailable": "本服务没有该运营机构的签名密钥",
    "bank-account-not-found": "未找到银行账户",
    "bank-account-exists": "该机构已有此账号的账户",
    "bank-account-not-linked": "钱包未绑定此银行账户",
    "bank-insufficient-funds": "银行账户余额不足",
    "bank-transfer-not-found": "未找到银行充值或赎回记录",
    "invalid-account-number": "银行账号须为 12 至 19 位数字",
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
    "send no body (or an empty JSON object {}); this route reads nothing from it": (
        "请不要发送请求体（或只发送空的 JSON 对象 {}）：此接口不读取请求体"
    ),
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


# -- the glossary ----------------------------------------------------------------------------------

# The pilot's terms, in one table: (中文, English as the API and the pages say it, what it is). The
# README's glossary is this table (tests/services/test_humanize.py holds them equal); the
# translations below use these words and no others for these things.
GLOSSARY: tuple[tuple[str, str, str], ...] = (
    (
        "预付资金监管",
        "prepaid-fund supervision (`/v1/prepaid`)",
        "a share of each prepayment held in escrow until the service is given",
    ),
    ("预付套餐", "prepaid package", "sessions bought in advance from an enrolled merchant"),
    (
        "代发工资 / 补贴代发",
        "payroll / subsidy disbursement (`/v1/disbursements`)",
        "a payer's batch of rows, made by the operator (经办) and approved by a checker (复核)",
    ),
    (
        "消费红包",
        "consumption vouchers (`/v1/voucher-programs`)",
        "a government programme's restricted-purpose grants",
    ),
    ("工会福利", "union welfare", "the same voucher machinery, issued by a trade union"),
    (
        "三资监管",
        "village collective supervision (`/v1/collectives`)",
        "funds, assets and resources of a village collective (集体经济组织), spent by approved proposals (支出提案)",  # noqa: E501
    ),
    ("硬钱包", "hard wallet (gateway `/v1/cards`)", "a card, SIM or wearable that signs offline payments"),
    ("聚合支付码", "payment code (`/v1/payment-codes`)", "one QR code any wallet, voucher or card pays"),
    ("钱包 / 冻结", "wallet / frozen", "a registered account; frozen by the regulator (监管方)"),
    ("幂等键", "`Idempotency-Key`", "the same request sent twice moves money once"),
    ("分 / 元", "fen / yuan", "amounts are integers in fen (1 元 = 100 分)"),
    ("运营方 / 审计方", "operator / auditor", "the roles of API keys (API 密钥)"),
)

# Contract states and roles by name (services/common/humanize.py ENUMS), in Chinese.
STATES_ZH: dict[str, str] = {
    "None": "无",
    "Draft": "草稿",
    "Approved": "已复核",
    "Closed": "已关闭",
    "Cancelled": "已取消",
    "Explicit": "逐行发放",
    "Merkle": "凭证领取",
    "Active": "正常",
    "Blocked": "已停用",
    "Lost": "已挂失",
    "Pending": "待审批",
    "Executed": "已执行",
    "Rejected": "已否决",
    "Committee": "村委成员",
    "Treasurer": "出纳",
    "Property": "经营性资产",
    "Resource": "资源性资产",
    "GrantList": "名单发放",
    "OpenEnrolment": "自由报名",
    "Open": "有效",
    "Consumed": "已用完",
    "Refunded": "已退款",
    "Personal": "个人钱包",
    "Merchant": "商户钱包",
    "Institution": "机构钱包",
    "Completed": "已完成",
    "Released": "已释放",
}

# The pages' words (the dashboard, the reconciliation report, the demo's narration), English ->
# zh-CN. A text without an entry stays English (a test holds the dashboard's to this table).
UI_ZH: dict[str, str] = {
    # the park report's page (services/operator/families/park/html.py, issue 23)
    "Park report": "园区资金闭环报告",
    "Area": "街道",
    "As of block": "截至区块",
    "Free money": "自由资金",
    "Wages and subsidies paid into staff wallets": "发放至园区员工钱包的工资与补贴",
    "Spent inside the park": "在园区内消费",
    "Retention ratio": "园区留存率",
    "Retention ratio of free money": "自由资金园区留存率",
    "Fee income": "园区租金与费用收入",
    "Earmarked money (welfare vouchers)": "专款专用资金（员工福利券）",
    "Welfare programme": "福利券计划",
    "Granted to staff": "发放给员工",
    "Spent at the park's merchants": "在园区商户使用",
    "Unspent": "未使用",
    "Returned at expiry": "到期退回",
    "Expired": "已到期",
    "Spend ratio": "使用率",
    "Other earmarked money spent inside": "其他专款（消费券、卡内专款）园内使用",
    "yes": "是",
    "no": "否",
    "Card taps and door access": "刷卡与门禁",
    "Card taps at the park's terminals": "园区终端刷卡笔数",
    "Card tap amount": "刷卡金额",
    "Door entries": "门禁通行次数",
    "Door denials": "门禁拒绝次数",
    "Day": "日期",
    "others": "其他人员",
    "By tenant": "按入驻企业",
    "By merchant category": "按商户类别",
    "By merchant": "按商户",
    "Tenant": "企业",
    "Paid in": "发放",
    "Spent inside": "园内消费",
    "Earmarked granted": "福利券发放",
    "Earmarked spent": "专款使用",
    "Fees paid": "缴纳费用",
    "Category": "类别",
    "Merchants": "商户数",
    "Merchant": "商户",
    "Takings from staff": "员工消费收入",
    # the dashboard
    "xcpay dashboard": "xcpay 运营看板",
    "xcpay operator dashboard": "xcpay 运营看板",
    "not connected": "未连接",
    "forget key": "退出",
    "API key": "API 密钥",
    "Read-only view. Enter an operator, regulator or auditor API key; it is kept in this tab only (sessionStorage) and sent as X-API-Key.": (  # noqa: E501
        "只读视图。请输入运营方、监管方或审计方的 API 密钥；它只保存在本标签页（sessionStorage），并以 X-API-Key 发送。"  # noqa: E501
    ),
    "Or open the one-time sign-in link that make run prints.": "或打开 make run 打印的一次性登录链接。",
    "connect": "连接",
    "language": "语言",
    "System": "系统",
    "supply": "发行总量",
    "wallets": "钱包",
    "custodial wallets": "托管钱包",
    "token": "数字现金",
    "chain id": "链 ID",
    "latest block": "最新区块",
    "indexed events": "已索引事件",
    "updated": "更新时间",
    "Spending by merchant category": "按商户类别的消费",
    "spending by merchant category": "按商户类别的消费",
    "Prepaid escrow": "预付资金监管",
    "deposited": "已存入",
    "held": "监管中",
    "released": "已拨付",
    "refunded": "已退款",
    "packages": "预付套餐",
    "merchants enrolled": "纳入监管的商户",
    "Payment codes": "聚合支付码",
    "codes": "支付码",
    "static / dynamic": "静态 / 动态",
    "payments": "支付笔数",
    "paid": "已支付",
    "Disbursements": "代发工资 / 补贴代发",
    "batches": "批次",
    "funded": "已注资",
    "reclaimed": "已收回",
    "outstanding": "待领取",
    "reference": "批次编号",
    "purpose": "用途",
    "status": "状态",
    "progress": "进度",
    "total": "总额",
    "exceptions": "异常",
    "Collective funds": "三资监管",
    "collectives": "集体经济组织",
    "proposals": "支出提案",
    "assets": "资产",
    "held by the fund": "资金余额",
    "collective": "集体经济组织",
    "year": "年度",
    "line": "预算科目",
    "budget": "预算",
    "spent": "已支出",
    "remaining": "剩余",
    "used": "使用率",
    "Voucher programmes": "消费红包 / 工会福利",
    "programmes": "活动",
    "held by the programmes": "活动资金余额",
    "id": "编号",
    "name": "名称",
    "mode": "方式",
    "holders": "持有人",
    "granted": "已发放",
    "returned": "已退回",
    "Hard-wallet settlements": "硬钱包结算",
    "Unattended devices": "无人值守设备",
    "cards": "硬钱包卡",
    "loaded": "已圈存",
    "settled": "已结算",
    "reserve": "备付金",
    "shortfall": "差额",
    "payments settled / duplicate / rejected": "已结算 / 重复 / 拒绝",
    "quick-pay mandates / pulls": "钱包快付授权 / 扣款",
    "block": "区块",
    "size": "笔数",
    "duplicates": "重复",
    "rejected": "拒绝",
    "shortfalls": "差额",
    "Latest blocks": "最新区块",
    "time (Beijing)": "时间（北京时间）",
    "txs": "交易数",
    "hash": "哈希",
    "Latest events": "最新事件",
    "time": "时间",
    "event": "事件",
    "parties": "相关方",
    "amount": "金额",
    "Sections that could not be read": "无法读取的部分",
    "none": "无",
    "frozen": "已冻结",
    "PAUSED": "已暂停",
    "running": "运行中",
    "live, block": "实时，区块",
    "offline, retrying": "离线，正在重试",
    "retrying": "正在重试",
    "The key was refused": "密钥被拒绝",
    "could not be read": "无法读取",
    "the chart library is not available; figures in fen": "图表库不可用；金额（分）",
    "paid to merchants (digital cash)": "支付给商户（数字现金）",
    "voucher spending": "消费红包支出",
    "Voucher spending per merchant category across programmes, beside all digital cash paid to merchants (yuan).": (  # noqa: E501
        "各活动按商户类别的消费红包支出，以及支付给商户的全部数字现金（元）。"
    ),
    "No voucher contract in this deployment: digital cash paid to merchants per category (yuan).": (
        "本部署没有消费红包合约：按类别支付给商户的数字现金（元）。"
    ),
    "yuan": "元",
    "from": "付款方",
    "to": "收款方",
    "department store": "百货商店",
    "grocery": "食品杂货",
    "restaurant": "餐馆",
    "fast food": "快餐",
    "sport clubs": "体育健身",
    "health": "医疗卫生",
    # a batch's status, an event's parties
    "draft": "草稿",
    "ready": "待复核",
    "approved": "已复核",
    "executing": "发放中",
    "executed": "已发放",
    "closed": "已关闭",
    "cancelled": "已取消",
    "merchant": "商户",
    "consumer": "消费者",
    "payer": "付款方",
    "payee": "收款方",
    "wallet": "钱包",
    "account": "账户",
    "card": "卡",
    "holder": "持有人",
    "issuer": "发行方",
    "recipient": "收款人",
    "officer": "村干部",
    "proposer": "提案人",
    "owner": "所有人",
    "spender": "被授权方",
    "checker": "复核人",
    "maker": "经办人",
    "operator": "运营方",
    "regulator": "监管方",
    "auditor": "审计方",
    # the sign-in link
    "Signed in": "已登录",
    "This sign-in link was used already or has expired": "此登录链接已使用或已过期",
    "Ask for a new link (make run prints one at each start; python -m services.operator login-link makes another).": (  # noqa: E501
        "请获取新的链接（make run 每次启动都会打印一个；python -m services.operator login-link 可再生成一个）。"  # noqa: E501
    ),
    "open the dashboard": "打开运营看板",
    # the reconciliation report
    "xcpay reconciliation": "xcpay 对账报告",
    "Reconciliation of chain": "链上对账：链",
    "Blocks": "区块",
    "to block": "至",
    "generated": "生成于",
    "CLEAN: the chain and the records agree": "一致：链上记录与业务记录相符",
    "DISCREPANCIES": "处差异",
    "counts": "计数",
    "Invariants": "不变量检查",
    "family": "业务",
    "invariant": "检查项",
    "figures": "数据",
    "holds": "成立",
    "BROKEN": "不成立",
    "Surpluses": "多余资金",
    "Cash sent straight to a family contract, beyond its books: no one's money is missing.": (
        "直接转入业务合约、超出其账目的资金：没有任何人的资金缺失。"
    ),
    "contract": "合约",
    "surplus": "多余金额",
    "sent directly by": "直接转入方",
    "Totals": "合计",
    "disbursed by purpose": "按用途代发",
    "paid to merchants by category": "按类别支付给商户",
    "events": "事件",
    "Discrepancies": "差异",
    "kind": "类型",
    "what": "内容",
    "transaction": "交易",
    "operation": "操作",
}


def ui(text: str, lang: str) -> str:
    """A page's word ``text`` in ``lang`` (English when there is no entry)."""
    return UI_ZH.get(text, text) if lang == ZH else text


def page_language(query: str | None, cookie: str | None, accept_language: str | None) -> str:
    """A page's language: ``?lang=zh|en`` first (the switch on the page), then the remembered
    choice (the ``xcpay_lang`` cookie the switch sets), then ``Accept-Language``."""
    for choice in (query, cookie):
        if choice in ("zh", "zh-CN"):
            return ZH
        if choice == "en":
            return EN
    return preferred(accept_language)


# The dashboard's latest events by kind: event name -> (English, zh-CN). ``Transfer`` is told apart
# by the page: from the zero address an issuance, to it a redemption, else a payment.
EVENT_LABELS: dict[str, tuple[str, str]] = {
    "Transfer": ("payment", "支付"),
    "PreAuthorized": ("vending pre-authorisation held", "售货机预授权冻结"),
    "PreAuthCompleted": ("vending pre-authorisation completed", "售货机预授权完成扣款"),
    "PreAuthReleased": ("vending pre-authorisation released", "售货机预授权释放"),
    "RecyclingProgrammeCreated": ("recycling programme created", "创建再生资源回收活动"),
    "RecyclingProgrammeFunded": ("recycling programme funded", "再生资源回收活动注资"),
    "RecyclingPaid": ("recycling payout", "再生资源回收奖励"),
    "RecyclingProgrammeClosed": ("recycling programme closed", "再生资源回收活动关闭"),
    "DeviceLimitsChanged": ("device limits changed", "设备限额变更"),
    "Issued": ("issuance", "发行"),
    "Redeemed": ("redemption", "兑回"),
    "Approval": ("allowance", "授权额度"),
    "WalletRegistered": ("wallet registered", "登记钱包"),
    "WalletTierChanged": ("wallet tier changed", "钱包等级变更"),
    "Frozen": ("wallet frozen", "冻结钱包"),
    "Unfrozen": ("wallet unfrozen", "解冻钱包"),
    "AccountFrozen": ("wallet frozen", "冻结钱包"),
    "AccountUnfrozen": ("wallet unfrozen", "解冻钱包"),
    "TierLimitsChanged": ("tier limits changed", "钱包等级限额变更"),
    "RoleGranted": ("role granted", "授予角色"),
    "MerchantEnrolled": ("merchant enrolled (prepaid-fund supervision)", "商户纳入预付资金监管"),
    "MerchantClosed": ("merchant closed by the regulator", "监管方关闭商户"),
    "PackagePrepaid": ("prepaid package bought", "购买预付套餐"),
    "SessionsConsumed": ("sessions used", "核销课时"),
    "PackageCancelled": ("prepaid package cancelled", "取消预付套餐"),
    "PackageRefunded": ("prepaid package refunded", "预付套餐退款"),
    "RefundDeferred": ("refund deferred", "退款暂缓"),
    "BatchCreated": ("disbursement batch created", "创建代发批次"),
    "RowsAdded": ("batch rows added", "添加批次明细"),
    "BatchApproved": ("disbursement batch approved", "代发批次复核通过"),
    "BatchCancelled": ("disbursement batch cancelled", "取消代发批次"),
    "ChunkPaid": ("batch chunk paid", "批次分段到账"),
    "Paid": ("paid out", "代发到账"),
    "PayoutException": ("payout exception", "代发异常"),
    "Reclaimed": ("reclaimed by the payer", "付款方收回"),
    "ProgrammeCreated": ("voucher programme created", "创建消费红包活动"),
    "Granted": ("voucher granted", "发放消费红包"),
    "GrantRootSet": ("voucher campaign published", "发布消费红包名单"),
    "Spent": ("voucher spent", "使用消费红包"),
    "GrantReturned": ("voucher returned", "退回消费红包"),
    "BudgetReturned": ("programme budget returned", "退回活动预算"),
    "MerchantListed": ("merchant listed", "商户加入名单"),
    "CollectiveCreated": ("collective created (three-assets supervision)", "创建集体经济组织（三资监管）"),
    "ProposalCreated": ("spending proposal made", "提出支出提案"),
    "ProposalApproved": ("spending proposal approved", "支出提案获批"),
    "ProposalExecuted": ("spending proposal paid", "支出提案已执行"),
    "ProposalRejected": ("spending proposal rejected", "支出提案被否决"),
    "ProposalCancelled": ("spending proposal cancelled", "撤回支出提案"),
    "IncomeRecorded": ("collective income recorded", "记录集体收入"),
    "CardRegistered": ("hard-wallet card issued", "发放硬钱包卡"),
    "CardLoaded": ("hard-wallet card loaded", "硬钱包圈存"),
    "CardReportedLost": ("hard-wallet card reported lost", "硬钱包挂失"),
    "CardBlocked": ("hard-wallet card blocked", "硬钱包停用"),
    "BatchProcessed": ("offline payments settled (batch)", "离线支付批量结算"),
    "PaymentSettled": ("offline payment settled", "离线支付结算"),
    "PaymentShortfall": ("offline payment short of reserve", "离线支付备付金不足"),
    "PaymentRejected": ("offline payment rejected", "离线支付被拒"),
    "PaymentDuplicate": ("offline payment duplicate", "重复的离线支付"),
    "MandateGranted": ("quick-pay mandate granted", "钱包快付授权"),
    "MandatePulled": ("quick-pay payment", "钱包快付扣款"),
    "MandateRevoked": ("quick-pay mandate revoked", "撤销钱包快付授权"),
    # a lost wallet's family holdings moved to its successor (issue 22)
    "GrantsRecovered": ("vouchers moved to the recovered wallet", "消费红包转入新钱包"),
    "PackageRecovered": ("prepaid package moved to the recovered wallet", "预付套餐转入新钱包"),
    "MandateRecovered": ("quick-pay mandate moved to the recovered wallet", "快付授权转入新钱包"),
    "CardRecovered": ("hard-wallet card moved to the recovered wallet", "硬钱包卡转入新钱包"),
    "PayoutRecovered": ("payout re-addressed to the recovered wallet", "代发款改付新钱包"),
    "PaidFor": ("payment code paid", "聚合支付码收款"),
}


def event_labels(lang: str) -> dict[str, str]:
    """The events' labels in ``lang``, for the dashboard's script."""
    return {name: (zh if lang == ZH else en) for name, (en, zh) in EVENT_LABELS.items()}
