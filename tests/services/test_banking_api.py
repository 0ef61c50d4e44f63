"""Two tiers over HTTP (issue 24), on both databases: the central bank's reserves, an institution's
customer accounts (numbers masked), top-ups from and redemptions to a bank account as one
idempotent operation (the bank's double-entry journal and the chain agree), institution-scoped
keys, the reconciler finishing a transfer left between its legs, and a payment across
institutions on each institution's statement."""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import func, select

from chain.accounts import INSTITUTION_DEV_ACCOUNTS, dev_account
from services.common.models import ApiKey, Operation
from services.common.operations import perform
from services.common.problems import Problem
from services.operator.families.banking.models import BankEntry, BankPosting, BankTransfer
from tests.services.conftest import Api
from tests.services.test_operator_api import assert_problem

BANK_B = dev_account(INSTITUTION_DEV_ACCOUNTS[0])
NUMBER = "6222020200012345678"
RICH = "6222020200099990001"


@pytest.fixture(scope="module")
def b(api: Api) -> dict:
    """Institution #2 with 1,000.00 yuan of reserve (allocated through the API), its operator key,
    a custodial customer wallet served by it, and a linked account holding 500.00."""
    ctx = api.app.state.ctx
    r = api.post("regulator", "/v1/institutions", {"signer": BANK_B.address, "name": "abc-xiangcheng"})
    assert r.status_code == 201, r.text
    # authorised over HTTP, the institution's key may issue at once: the service's admin key granted
    # it the token's issuer role (an operation of its own, expected by the reconciliation)
    assert ctx.cash.is_issuer(BANK_B.address)
    again = api.post("regulator", "/v1/institutions", {"signer": BANK_B.address, "name": "abc-xiangcheng"})
    assert again.status_code == 409 and "signer-taken" in again.json()["type"], again.text
    r = api.post("regulator", "/v1/institutions/2/reserve/allocations", {"amount_fen": 1_000_00})
    assert r.status_code == 200, r.text
    r = api.admin.post("/v1/api-keys", json={"role": "operator", "label": "bank b", "institution": 2})
    assert r.status_code == 201, r.text
    assert r.json()["institution"] == 2
    import httpx

    api.clients["bank_b"] = httpx.Client(base_url=api.url, headers={"X-API-Key": r.json()["key"]}, timeout=60)
    body = {"kind": "personal", "tier": 3, "display_name": "mei", "identity": f"id-{uuid.uuid4()}"}
    r = api.post("bank_b", "/v1/wallets", body)
    assert r.status_code == 201, r.text
    wallet = r.json()["request"]["address"]
    assert ctx.institutions.served_by(wallet) == 2
    r = api.bank_b.post(
        "/v1/bank/accounts", json={"number": NUMBER, "holder": "Mei", "opening_balance_fen": 500_00}
    )
    assert r.status_code == 201, r.text
    account = r.json()
    r = api.bank_b.post(f"/v1/wallets/{wallet}/bank-links", json={"account_id": account["id"]})
    assert r.status_code == 201, r.text
    return {"wallet": wallet, "account": account["id"]}


def _balance(api: Api, account: int) -> int:
    r = api.bank_b.get(f"/v1/bank/accounts/{account}")
    assert r.status_code == 200, r.text
    return int(r.json()["balance_fen"])


def _journal_balances(api: Api) -> None:
    """Every entry's postings sum to zero (double entry), hence the whole journal too."""
    with api.app.state.ctx.db.session() as s:
        sums = s.execute(
            select(BankPosting.entry_id, func.sum(BankPosting.amount_fen)).group_by(BankPosting.entry_id)
        ).all()
        assert sums and all(total == 0 for _, total in sums)
        assert s.scalar(select(func.count()).select_from(BankEntry)) == len(sums)


class TestAccounts:
    def test_numbers_are_masked_in_every_answer(self, api: Api, b: dict) -> None:
        r = api.bank_b.get(f"/v1/wallets/{b['wallet']}/bank-links")
        assert r.status_code == 200
        assert r.json()["accounts"][0]["masked"] == "6222 **** **** 5678"
        assert NUMBER not in r.text
        assert NUMBER not in api.bank_b.get(f"/v1/bank/accounts/{b['account']}").text
        assert NUMBER not in api.auditor.get("/v1/institutions/2/statement").text

    def test_an_account_number_is_digits_and_unique_per_institution(self, api: Api, b: dict) -> None:
        assert_problem(
            api.bank_b.post("/v1/bank/accounts", json={"number": "12ab5678901234", "holder": "x"}),
            422,
            "invalid-request",
        )
        assert_problem(
            api.bank_b.post("/v1/bank/accounts", json={"number": NUMBER, "holder": "x"}),
            409,
            "bank-account-exists",
        )
        # institution #1 may have the same number: another bank
        assert (
            api.operator.post("/v1/bank/accounts", json={"number": NUMBER, "holder": "x"}).status_code == 201
        )

    def test_another_institutions_key_reaches_neither_account_nor_wallet(self, api: Api, b: dict) -> None:
        assert_problem(api.operator.get(f"/v1/bank/accounts/{b['account']}"), 404, "bank-account-not-found")
        assert_problem(api.operator.get(f"/v1/wallets/{b['wallet']}/bank-links"), 403, "institution-scope")
        r = api.operator.post(f"/v1/wallets/{b['wallet']}/bank-links", json={"account_id": b["account"]})
        assert_problem(r, 403, "institution-scope")
        r = api.post(
            "operator",
            "/v1/bank/top-ups",
            {"wallet": b["wallet"], "account_id": b["account"], "amount_fen": 1},
        )
        assert_problem(r, 403, "institution-scope")
        assert_problem(api.operator.get("/v1/institutions/2/statement"), 403, "institution-scope")


class TestScopeOnTheCashRoutes:
    def test_an_institutions_key_moves_only_its_customers_cash(self, api: Api, b: dict) -> None:
        ctx = api.app.state.ctx
        theirs = api.new_wallet(name="institution 1's customer")
        body = {"to": theirs, "amount_fen": 1}
        assert_problem(api.post("bank_b", "/v1/issuance", body), 403, "institution-scope")
        assert_problem(
            api.post("operator", "/v1/issuance", {**body, "to": b["wallet"]}), 403, "institution-scope"
        )
        r = api.post("operator", "/v1/transfers", {"from": b["wallet"], "to": theirs, "amount_fen": 1})
        assert_problem(r, 403, "institution-scope")
        r = api.post("operator", "/v1/redemptions", {"from": b["wallet"], "amount_fen": 1})
        assert_problem(r, 403, "institution-scope")
        row = {"kind": "personal", "tier": 3, "display_name": "x", "identity": f"id-{uuid.uuid4()}"}
        assert_problem(api.post("bank_b", "/v1/wallets/batch", {"wallets": [row]}), 403, "institution-scope")
        # its own customer: issued by its own key, within its own reserve
        before = ctx.institutions.institution(2).outstanding
        r = api.post("bank_b", "/v1/issuance", {"to": b["wallet"], "amount_fen": 1_00})
        assert r.status_code == 200, r.text
        assert ctx.institutions.institution(2).outstanding == before + 1_00


class TestScopeOnTheOtherFamilies:
    """Every family's operator routes that act for a customer wallet keep the institution scope:
    institution #1's key acting for institution #2's customer gets 403 ``institution-scope``, and
    nothing is recorded or sent."""

    def test_prepaid_vouchers_collective_disbursement_and_holder_keys(self, api: Api, b: dict) -> None:
        theirs, shop = b["wallet"], api.new_wallet(kind="merchant", tier=2, category=7997, name="gym")
        package = {
            "consumer": theirs,
            "merchant": shop,
            "sessions": 1,
            "unit_price_fen": 1_00,
            "expires_at": "2030-01-01T00:00:00+08:00",
        }
        refused = [
            ("/v1/prepaid/packages", package),
            ("/v1/voucher-programs/1/enrol", {"holder": theirs}),
            ("/v1/voucher-programs/1/spend", {"holder": theirs, "merchant": shop, "bill_fen": 1_00}),
            ("/v1/collectives/1/income", {"payer": theirs, "amount_fen": 1_00}),
            (f"/v1/disbursements/payers/{theirs}/officers", {"account": shop, "role": "checker"}),
            ("/v1/holder/keys", {"wallet": theirs, "ttl_minutes": 5}),
        ]
        for path, body in refused:
            assert_problem(api.post("operator", path, body), 403, "institution-scope")
        # its own institution's key is let through (to the family's own rules)
        r = api.post("bank_b", "/v1/holder/keys", {"wallet": theirs, "ttl_minutes": 5})
        assert r.status_code == 201, r.text

    def test_the_operations_layer_signs_for_no_other_institutions_customer(self, api: Api, b: dict) -> None:
        """The one place every custodial signature passes (``Operations``), whichever route asked
        or forgot to check (the red team moved another institution's customers' money through the
        park, utilities, gateway and refund routes): an operation of institution #1's key that
        would have the service sign with institution #2's customer's key fails with 403
        ``institution-scope`` before anything is signed; #2's own key is let through."""
        ctx, ops = api.app.state.ctx, api.app.state.ops
        theirs = b["wallet"]
        shop = api.new_wallet(kind="merchant", tier=2, category=5411, name="kiosk")
        assert api.post("bank_b", "/v1/issuance", {"to": theirs, "amount_fen": 5_00}).status_code == 200
        with ctx.db.session() as s:
            keys = s.scalars(select(ApiKey).where(ApiKey.role == "operator")).all()
            first = next(k for k in keys if k.institution is None)
            second = next(k for k in keys if k.institution == 2)
        before = ctx.cash.balance_of(theirs)
        body = {"sender": theirs, "to": shop, "amount_fen": 1_00}
        with pytest.raises(Problem) as refused:
            perform(ops, "cash.transfer", first, f"scope-{uuid.uuid4()}", body)
        assert (refused.value.status, refused.value.slug) == (403, "institution-scope")
        assert theirs in refused.value.detail
        assert ctx.cash.balance_of(theirs) == before  # nothing signed, nothing sent
        op, _ = perform(ops, "cash.transfer", second, f"scope-{uuid.uuid4()}", body)
        assert op.status == "confirmed"
        assert ctx.cash.balance_of(theirs) == before - 1_00
        # the routes whose signer is the service's own key check the wallet's institution themselves
        r = api.post("operator", f"/v1/wallets/{theirs}/recovery", {"evidence": "face check, clerk 1"})
        assert_problem(r, 403, "institution-scope")

    def test_payment_codes(self, api: Api, b: dict) -> None:
        shop = api.new_wallet(kind="merchant", tier=2, category=5411, name="shop")
        r = api.post("operator", "/v1/payment-codes", {"merchant": shop, "amount_fen": 1_00})
        assert r.status_code == 201, r.text
        code = r.json()["id"]
        recorded = _operations(api)
        r = api.post("operator", f"/v1/payment-codes/{code}/pay", {"form": "custodial", "payer": b["wallet"]})
        assert_problem(r, 403, "institution-scope")
        assert _operations(api) == recorded  # nothing recorded, nothing sent
        # a merchant served by institution #2: institution #1's key makes it no code
        body = {"kind": "merchant", "tier": 2, "display_name": "b-shop", "identity": f"id-{uuid.uuid4()}"}
        r = api.post("bank_b", "/v1/wallets", {**body, "merchant_category": 5411})
        assert r.status_code == 201, r.text
        b_shop = r.json()["request"]["address"]
        assert_problem(
            api.post("operator", "/v1/payment-codes", {"merchant": b_shop}), 403, "institution-scope"
        )


def _operations(api: Api) -> int:
    with api.app.state.ctx.db.session() as s:
        return int(s.scalar(select(func.count()).select_from(Operation)) or 0)


class TestTopUpAndRedemption:
    def test_top_up_debits_the_account_and_mints_exactly_once(self, api: Api, b: dict) -> None:
        cash = api.app.state.ctx.cash
        before, held = _balance(api, b["account"]), cash.balance_of(b["wallet"])
        body = {"wallet": b["wallet"], "account_id": b["account"], "amount_fen": 200_00}
        r = api.post("bank_b", "/v1/bank/top-ups", body, key="top-1")
        assert r.status_code == 200, r.text
        first = r.json()
        assert first["status"] == "completed" and first["account"] == "6222 **** **** 5678"
        again = api.post("bank_b", "/v1/bank/top-ups", body, key="top-1")
        assert again.status_code == 200 and again.json()["id"] == first["id"]
        assert cash.balance_of(b["wallet"]) == held + 200_00
        assert _balance(api, b["account"]) == before - 200_00
        r = api.post("bank_b", "/v1/bank/top-ups", {**body, "amount_fen": 1}, key="top-1")
        assert_problem(r, 409, "idempotency-key-reused")
        _journal_balances(api)

    def test_a_top_up_beyond_the_account_moves_nothing(self, api: Api, b: dict) -> None:
        cash = api.app.state.ctx.cash
        held = cash.balance_of(b["wallet"])
        body = {"wallet": b["wallet"], "account_id": b["account"], "amount_fen": 10_000_00}
        body_ = assert_problem(api.post("bank_b", "/v1/bank/top-ups", body), 409, "bank-insufficient-funds")
        assert body_["transfer_status"] == "failed"
        assert NUMBER not in str(body_)
        assert cash.balance_of(b["wallet"]) == held

    def test_a_top_up_beyond_the_reserve_is_reversed_in_the_bank(self, api: Api, b: dict) -> None:
        ctx = api.app.state.ctx
        r = api.bank_b.post(
            "/v1/bank/accounts", json={"number": RICH, "holder": "Mei", "opening_balance_fen": 5_000_00}
        )
        rich = r.json()["id"]
        api.bank_b.post(f"/v1/wallets/{b['wallet']}/bank-links", json={"account_id": rich})
        headroom = ctx.institutions.institution(2).headroom
        body = {"wallet": b["wallet"], "account_id": rich, "amount_fen": headroom + 1}
        problem = assert_problem(api.post("bank_b", "/v1/bank/top-ups", body), 409, "reserve-exceeded")
        assert problem["transfer_status"] == "compensated"
        assert _balance(api, rich) == 5_000_00  # debited, then credited back
        with ctx.db.session() as s:
            t = s.get(BankTransfer, problem["transfer_id"])
            assert t is not None and t.bank_entry_id and t.reversal_entry_id
        _journal_balances(api)

    def test_redemption_burns_then_credits_the_account(self, api: Api, b: dict) -> None:
        cash = api.app.state.ctx.cash
        before, held = _balance(api, b["account"]), cash.balance_of(b["wallet"])
        body = {"wallet": b["wallet"], "account_id": b["account"], "amount_fen": 50_00}
        r = api.post("bank_b", "/v1/bank/redemptions", body, key="red-1")
        assert r.status_code == 200, r.text
        assert api.post("bank_b", "/v1/bank/redemptions", body, key="red-1").json()["id"] == r.json()["id"]
        assert cash.balance_of(b["wallet"]) == held - 50_00
        assert _balance(api, b["account"]) == before + 50_00
        _journal_balances(api)

    def test_two_concurrent_top_ups_never_overdraw_the_account(self, api: Api, b: dict) -> None:
        cash = api.app.state.ctx.cash
        number = "62220202" + str(uuid.uuid4().int)[:10]
        r = api.bank_b.post(
            "/v1/bank/accounts", json={"number": number, "holder": "Mei", "opening_balance_fen": 100_00}
        )
        account = r.json()["id"]
        api.bank_b.post(f"/v1/wallets/{b['wallet']}/bank-links", json={"account_id": account})
        held = cash.balance_of(b["wallet"])
        body = {"wallet": b["wallet"], "account_id": account, "amount_fen": 60_00}
        with ThreadPoolExecutor(2) as pool:
            answers = list(pool.map(lambda _: api.post("bank_b", "/v1/bank/top-ups", body), range(2)))
        assert sorted(r.status_code for r in answers) == [200, 409], [r.text for r in answers]
        assert _balance(api, account) == 40_00 and cash.balance_of(b["wallet"]) == held + 60_00
        _journal_balances(api)

    def test_a_refused_redemption_moves_nothing(self, api: Api, b: dict) -> None:
        cash = api.app.state.ctx.cash
        before, held = _balance(api, b["account"]), cash.balance_of(b["wallet"])
        body = {"wallet": b["wallet"], "account_id": b["account"], "amount_fen": held + 1}
        problem = assert_problem(
            api.post("bank_b", "/v1/bank/redemptions", body), 422, "insufficient-balance"
        )
        assert problem["transfer_status"] == "failed"
        assert _balance(api, b["account"]) == before and cash.balance_of(b["wallet"]) == held


class TestReconciler:
    def test_finishes_a_top_up_left_after_its_bank_leg(self, api: Api, b: dict) -> None:
        transfers = api.app.state.banking
        cash = api.app.state.ctx.cash
        held, before = cash.balance_of(b["wallet"]), _balance(api, b["account"])
        key = _key(api, "bank_b")
        t = transfers.begin(key, "left-1", "topup", b["wallet"], b["account"], 10_00)
        transfers._topup_bank_leg(t)  # the process "dies" here: debited, nothing minted
        assert transfers.get(t.id).status == "bank_done" and cash.balance_of(b["wallet"]) == held
        assert transfers.reconcile_all() == {"completed": 1}
        assert cash.balance_of(b["wallet"]) == held + 10_00
        assert _balance(api, b["account"]) == before - 10_00
        assert transfers.reconcile_all() == {}  # nothing left, nothing done twice

    def test_finishes_a_redemption_left_after_its_chain_leg(self, api: Api, b: dict) -> None:
        transfers = api.app.state.banking
        cash = api.app.state.ctx.cash
        held, before = cash.balance_of(b["wallet"]), _balance(api, b["account"])
        key = _key(api, "bank_b")
        t = transfers.begin(key, "left-2", "redeem", b["wallet"], b["account"], 10_00)
        transfers._chain_leg(t)  # the process "dies" here: burnt, nothing credited
        assert transfers.get(t.id).status == "chain_done" and _balance(api, b["account"]) == before
        assert transfers.reconcile_all() == {"completed": 1}
        assert cash.balance_of(b["wallet"]) == held - 10_00
        assert _balance(api, b["account"]) == before + 10_00


class TestCentralBank:
    def test_lists_the_institutions_with_supply_and_reserves(self, api: Api, b: dict) -> None:
        body = api.auditor.get("/v1/institutions").json()
        assert [i["id"] for i in body["items"]] == [1, 2]
        assert sum(i["outstanding_fen"] for i in body["items"]) == body["supply_fen"]
        assert body["items"][1]["signer"] == BANK_B.address

    def test_withdrawal_below_outstanding_is_refused_and_only_the_regulator_may(
        self, api: Api, b: dict
    ) -> None:
        ctx = api.app.state.ctx
        inst = ctx.institutions.institution(2)
        r = api.post("regulator", "/v1/institutions/2/reserve/withdrawals", {"amount_fen": inst.headroom + 1})
        problem = assert_problem(r, 409, "reserve-below-outstanding")
        assert "operation_id" in problem
        r = api.post("operator", "/v1/institutions/2/reserve/withdrawals", {"amount_fen": 1})
        assert_problem(r, 403, "forbidden-role")
        assert_problem(
            api.post("regulator", "/v1/institutions/9/reserve/allocations", {"amount_fen": 1}),
            404,
            "institution-not-found",
        )

    def test_the_reconciliation_checks_supply_against_the_reserves(self, api: Api, b: dict) -> None:
        from services.operator.reconciliation import reconcile

        api.app.state.indexer.catch_up()  # the deployer's grant is no operation: indexed by the worker
        report = reconcile(api.app.state.ctx, full=True)
        mine = {c.name: c.holds for c in report.invariants if c.family == "banking"}
        assert report.verdict == "clean", report.discrepancies
        assert mine == {
            "supply = issued - redeemed over the operator institutions": True,
            "supply <= the institutions' reserves": True,
            "no institution has issued beyond its reserve": True,
        }
        assert report.totals["issued_by_institution_fen"]["2"] > 0


class TestInteroperability:
    def test_a_payment_from_a_customer_of_a_to_a_merchant_of_b_shows_on_both_statements(
        self, api: Api, b: dict
    ) -> None:
        resident = api.new_wallet(name="resident of A")
        shop = api.post(
            "bank_b",
            "/v1/wallets",
            {
                "kind": "merchant",
                "tier": 2,
                "merchant_category": 5411,
                "display_name": "shop of B",
                "identity": f"id-{uuid.uuid4()}",
            },
        ).json()["request"]["address"]
        assert api.post("operator", "/v1/issuance", {"to": resident, "amount_fen": 30_00}).status_code == 200
        r = api.post("operator", "/v1/transfers", {"sender": resident, "to": shop, "amount_fen": 12_34})
        assert r.status_code == 200, r.text
        tx = r.json()["tx_hash"]
        a = api.operator.get("/v1/institutions/1/statement").json()
        bb = api.bank_b.get("/v1/institutions/2/statement").json()
        out = [line for line in a["chain"] if line["tx_hash"] == tx]
        into = [line for line in bb["chain"] if line["tx_hash"] == tx]
        assert out == [
            {
                **out[0],
                "side": "out",
                "wallet": resident,
                "counterparty": shop,
                "counterparty_institution": 2,
                "amount_fen": 12_34,
            }
        ]
        assert into == [
            {
                **into[0],
                "side": "in",
                "wallet": shop,
                "counterparty": resident,
                "counterparty_institution": 1,
                "amount_fen": 12_34,
            }
        ]
        assert bb["totals"]["paid_in_fen"] >= 12_34 and a["totals"]["paid_out_fen"] >= 12_34


def _key(api: Api, client: str) -> ApiKey:
    """The ApiKey row of a test client."""
    from services.common.keys import hash_key

    clear = api.clients[client].headers["X-API-Key"]
    with api.app.state.ctx.db.session() as s:
        return s.scalar(select(ApiKey).where(ApiKey.key_hash == hash_key(clear)))
