"""Configuration from environment variables with the ``XCPAY_`` prefix (pydantic-settings).

Outside the ``local`` profile, default or empty secrets refuse to start: a demo default must
never reach a real deployment by accident.
"""

from __future__ import annotations

from functools import cached_property
from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from chain.paths import VAR_DIR

LOCAL_KEYSTORE_PASSWORD = "xcpay-local-only"
LOCAL_IDENTITY_PEPPER = "xcpay-local-pepper"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="XCPAY_", extra="ignore")

    profile: Literal["local", "production"] = "local"
    database_url: str = f"sqlite:///{VAR_DIR / 'xcpay.db'}"
    rpc_url: str = "http://127.0.0.1:8545"
    manifest: Path = VAR_DIR / "manifest.json"

    # Operator and regulator signing keys: Ethereum v3 keystores and their passwords (or a file
    # holding the password). In the local profile they default to development accounts 1 and 2.
    operator_keystore: Path | None = None
    operator_password: str | None = None
    operator_password_file: Path | None = None
    regulator_keystore: Path | None = None
    regulator_password: str | None = None
    regulator_password_file: Path | None = None

    # Encrypts the custodial wallets' keystores (stored encrypted in the database).
    keystore_password: str = LOCAL_KEYSTORE_PASSWORD
    # scrypt cost of custodial keystores; 2**14 keeps wallet creation fast, raise it in production.
    keystore_scrypt_n: int = 2**14

    # Key of the HMAC that turns identity references into the hashes stored on chain (an ID
    # number has too little entropy for a bare hash).
    identity_pepper: str = LOCAL_IDENTITY_PEPPER

    admin_api_key: str | None = None

    # Ether sent to each new custodial wallet so it can pay gas (0 on a free-gas network).
    gas_topup_wei: int = 10**17
    confirmations: int = 0
    receipt_timeout_s: float = 30.0
    # One JSON-RPC call. A node that is down refuses at once; this bounds a slow answer (the gas
    # estimate of a 200-row disbursement chunk takes seconds on the embedded py-evm node).
    rpc_timeout_s: float = Field(default=60.0, gt=0)
    # Rows per explicit-batch chunk (and per Merkle push) the service sends; the contract's
    # maximum is 200. Smaller chunks show progress sooner and keep each transaction short.
    disburse_chunk_rows: int = Field(default=100, ge=1, le=200)
    reconcile_interval_s: float = 5.0
    index_interval_s: float = 2.0

    api_host: str = "127.0.0.1"
    api_port: int = Field(default=8000, ge=1, le=65535)

    @model_validator(mode="after")
    def _refuse_default_secrets(self) -> Settings:
        if self.profile == "local":
            return self
        problems = []
        if not self.keystore_password or self.keystore_password == LOCAL_KEYSTORE_PASSWORD:
            problems.append("XCPAY_KEYSTORE_PASSWORD must be set to a non-default secret")
        if not self.identity_pepper or self.identity_pepper == LOCAL_IDENTITY_PEPPER:
            problems.append("XCPAY_IDENTITY_PEPPER must be set to a non-default secret")
        if not self.admin_api_key or len(self.admin_api_key) < 24:
            problems.append("XCPAY_ADMIN_API_KEY must be set (24 characters or more)")
        for role in ("operator", "regulator"):
            if getattr(self, f"{role}_keystore") is None:
                problems.append(f"XCPAY_{role.upper()}_KEYSTORE must point to an encrypted keystore")
            elif not (getattr(self, f"{role}_password") or getattr(self, f"{role}_password_file")):
                problems.append(f"XCPAY_{role.upper()}_PASSWORD or _PASSWORD_FILE must be set")
        if problems:
            raise ValueError("refusing to start in the production profile: " + "; ".join(problems))
        return self

    @cached_property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")
