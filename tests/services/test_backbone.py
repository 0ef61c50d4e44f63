"""The shared backbone: settings that refuse default secrets, migrations that match the models,
and no input that makes the API answer 500."""

from __future__ import annotations

import uuid
from pathlib import Path
from urllib.parse import quote

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import create_engine

from services.common.db import upgrade
from services.operator.settings import OperatorSettings
from services.schema import Base
from tests.databases import BACKENDS, fresh_database
from tests.services.conftest import Api


class TestSettings:
    def test_production_refuses_default_secrets(self) -> None:
        with pytest.raises(ValueError) as info:
            OperatorSettings(profile="production")
        message = str(info.value)
        for name in (
            "XCPAY_KEYSTORE_PASSWORD",
            "XCPAY_IDENTITY_PEPPER",
            "XCPAY_ADMIN_API_KEY",
            "XCPAY_OPERATOR_KEYSTORE",
            "XCPAY_REGULATOR_KEYSTORE",
        ):
            assert name in message

    STRONG = {  # noqa: RUF012 - read only
        "keystore_password": "correct horse battery staple",
        "identity_pepper": "f3a9c1e07b5d24681a2b3c4d5e6f7081",
        "admin_api_key": "xcp_Qm9vZ3xhZG1pbi1rZXktZm9yLXRlc3Rz",
        "keystore_scrypt_n": 2**17,
        "keystore_cost": "standard",  # tests/conftest.py sets the test profile in the environment
    }

    def _production(self, tmp_path: Path, **overrides: object) -> OperatorSettings:
        ks = tmp_path / "k.json"
        ks.write_text("{}")
        values = {
            **self.STRONG,
            "operator_keystore": ks,
            "operator_password": "p",
            "regulator_keystore": ks,
            "regulator_password_file": ks,
            **overrides,
        }
        return OperatorSettings(profile="production", **values)  # type: ignore[arg-type]

    def test_production_starts_with_real_secrets(self, tmp_path: Path) -> None:
        s = self._production(tmp_path)
        assert s.profile == "production" and s.rate_limited

    @pytest.mark.parametrize(
        ("field", "weak", "named", "required"),
        [
            ("keystore_password", "p", "XCPAY_KEYSTORE_PASSWORD", "at least 16 characters"),
            ("keystore_password", "aaaaaaaaaaaaaaaaaaaa", "XCPAY_KEYSTORE_PASSWORD", "8 or more different"),
            ("identity_pepper", "x", "XCPAY_IDENTITY_PEPPER", "at least 32 characters"),
            ("admin_api_key", "a" * 24, "XCPAY_ADMIN_API_KEY", "at least 32 characters"),
            ("admin_api_key", "ab" * 20, "XCPAY_ADMIN_API_KEY", "12 or more different"),
            ("keystore_scrypt_n", 2, "XCPAY_KEYSTORE_SCRYPT_N", "at least 131072"),
            ("keystore_scrypt_n", 2**14, "XCPAY_KEYSTORE_SCRYPT_N", "at least 131072"),
            ("keystore_scrypt_n", 2**17 + 1, "XCPAY_KEYSTORE_SCRYPT_N", "a power of 2"),
            ("keystore_cost", "test", "XCPAY_KEYSTORE_COST", "unset it"),
        ],
    )
    def test_production_refuses_weak_values_saying_what_is_required(
        self, tmp_path: Path, field: str, weak: object, named: str, required: str
    ) -> None:
        with pytest.raises(ValueError) as info:
            self._production(tmp_path, **{field: weak})
        message = str(info.value)
        assert named in message and required in message
        others = (
            "KEYSTORE_PASSWORD",
            "IDENTITY_PEPPER",
            "ADMIN_API_KEY",
            "KEYSTORE_SCRYPT_N",
            "KEYSTORE_COST",
        )
        assert [o for o in others if f"XCPAY_{o}" in message] == [named.removeprefix("XCPAY_")]

    def test_the_local_profile_keeps_its_demo_defaults_and_no_rate_limit(self) -> None:
        s = OperatorSettings()
        assert s.keystore_scrypt_n == 2**14 and not s.rate_limited
        assert OperatorSettings(rate_limit=True).rate_limited

    def test_local_profile_has_working_defaults(self) -> None:
        assert OperatorSettings().database_url.startswith("sqlite:///")


@pytest.mark.parametrize("kind", BACKENDS)
def test_migrations_produce_exactly_the_models_schema(kind: str, tmp_path: Path) -> None:
    with fresh_database(kind, tmp_path) as url:
        upgrade(url)
        engine = create_engine(url)
        with engine.connect() as conn:
            diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
        engine.dispose()
    assert diff == []


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**300), max_value=2**300)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=50),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=10), children, max_size=3)
    ),
    max_leaves=8,
)
FIELDS = [
    "to",
    "from",
    "amount_fen",
    "address",
    "kind",
    "tier",
    "display_name",
    "identity",
    "custody",
    "merchant_category",
    "role",
    "label",
]
bodies = st.dictionaries(st.sampled_from(FIELDS) | st.text(max_size=8), json_values, max_size=6) | json_values
PATHS = [
    "/v1/issuance",
    "/v1/transfers",
    "/v1/redemptions",
    "/v1/wallets",
    "/v1/regulator/freeze",
    "/v1/api-keys",
]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(path=st.sampled_from(PATHS), body=bodies)
def test_no_request_body_gets_a_500(api: Api, path: str, body: object) -> None:
    role = {"/v1/regulator/freeze": "regulator", "/v1/api-keys": "admin"}.get(path, "operator")
    r = api.clients[role].post(path, json=body, headers={"Idempotency-Key": str(uuid.uuid4())})
    assert r.status_code < 500, (path, body, r.text)
    if r.status_code >= 400:
        assert r.headers["content-type"].startswith("application/problem+json")


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(segment=st.text(min_size=1, max_size=60))
def test_no_path_gets_a_500(api: Api, segment: str) -> None:
    for prefix in ("/v1/wallets/", "/v1/operations/"):
        r = api.auditor.get(prefix + quote(segment, safe=""))
        assert r.status_code < 500, (prefix, segment, r.text)
        assert r.headers["content-type"].startswith(("application/problem+json", "application/json"))


def test_a_nonce_taken_by_another_process_with_the_same_key_is_signed_again(api: Api) -> None:
    """The gateway signs with the operator key too: when it takes the nonce the operator service
    had cached, the service's transaction is signed again with the next nonce, not failed."""
    from chain.sender import Transactor

    ctx = api.app.state.ctx
    wallet = api.new_wallet(tier=2, name="nonce")
    assert api.post("operator", "/v1/issuance", {"to": wallet, "amount_fen": 100}).status_code == 200
    other = Transactor(api.w3, ctx.manifest.error_decoder())  # another process: its own nonces
    other.transact(ctx.operator, ctx.cash.cash.functions.mint(wallet, 1))
    r = api.post("operator", "/v1/issuance", {"to": wallet, "amount_fen": 100})
    assert r.status_code == 200, r.text
    assert int(api.auditor.get(f"/v1/wallets/{wallet}").json()["balance_fen"]) == 201


def test_a_text_with_a_nul_character_is_refused_before_anything_is_recorded(api: Api) -> None:
    """PostgreSQL cannot store a NUL: a body holding one is refused at validation, so no intent is
    recorded and nothing reaches the chain (the same Idempotency-Key then serves a clean body)."""
    block = api.w3.eth.block_number
    key = str(uuid.uuid4())
    body = {"kind": "personal", "tier": 3, "display_name": "Ali\x00ce", "identity": f"id-{uuid.uuid4()}"}
    r = api.operator.post("/v1/wallets", json=body, headers={"Idempotency-Key": key})
    assert r.status_code == 422, r.text
    problem = r.json()
    assert problem["type"] == "urn:xcpay:problem:invalid-request" and "NUL" in problem["detail"], problem
    assert api.w3.eth.block_number == block
    clean = {**body, "display_name": "Alice"}
    r = api.operator.post("/v1/wallets", json=clean, headers={"Idempotency-Key": key})
    assert r.status_code == 201, r.text  # the key was never taken by the refused request
