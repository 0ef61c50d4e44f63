"""Configuration from environment variables with the ``XCPAY_`` prefix (pydantic-settings).

:class:`Settings` holds what both services read (database, node, keys, limits, webhooks' outbox);
each app adds its own in a subclass: ``services/operator/settings.py`` (``OperatorSettings``: its
address, the admin key, the indexer and the auditor's refresh) and ``services/gateway/settings.py``
(``GatewaySettings``: its address, its signing key, door challenges). The variable names are the
same for all (``XCPAY_`` and the field's name).

Outside the ``local`` profile, default, empty or weak secrets refuse to start, with a message that
says what is required: a demo default must never reach a real deployment by accident.
"""

from __future__ import annotations

from functools import cached_property
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from chain.paths import VAR_DIR

LOCAL_KEYSTORE_PASSWORD = "xcpay-local-only"
LOCAL_IDENTITY_PEPPER = "xcpay-local-pepper"

# What the production profile requires of its secrets: (least length, least distinct characters).
# The distinct-character floor refuses "a" * 24 and its like; a generated key (``xcp_`` and 43
# random characters) passes with room to spare.
MIN_PASSWORD = (16, 8)
MIN_PEPPER = (32, 12)
MIN_ADMIN_KEY = (32, 12)
# scrypt cost of the custodial keystores outside the local profile: 2**17 with r = 8 is 128 MiB
# and about 0.3 s per derivation (wallets/keystore.py requires the same of its files).
MIN_SCRYPT_N = 2**17

MiB = 1024 * 1024


def public_rpc_url(url: str) -> str:
    """The node's address as an unauthenticated caller may see it (``/healthz``): scheme, host and
    port only. Credentials ride in the userinfo (``https://user:secret@node``), the path
    (``/v3/<project key>``) or the query of a hosted node's URL; none of them is shown."""
    if not url.startswith(("http://", "https://", "ws://", "wss://")):
        return "in-process" if url == "in-process" else "(not shown)"
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"  # an IPv6 literal
    try:
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        port = ""
    return f"{parts.scheme}://{host}{port}"


def _weak(value: str | None, floor: tuple[int, int]) -> bool:
    length, distinct = floor
    return not value or len(value) < length or len(set(value)) < distinct


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
    # The second regulator key (issue 22): approves the court orders the first one proposed
    # (maker-checker on chain). Development account 11 locally; without it in production the
    # court-order approval answers 503 ``second-regulator-missing``.
    second_regulator_keystore: Path | None = None
    second_regulator_password: str | None = None
    second_regulator_password_file: Path | None = None
    # The contracts' admin key (the deployer's), only for the personal wallet limit (issue 22):
    # development account 0 locally; without it in production setting the limit answers 503.
    admin_keystore: Path | None = None
    admin_password: str | None = None
    admin_password_file: Path | None = None

    # Encrypts the custodial wallets' keystores (stored encrypted in the database).
    keystore_password: str = LOCAL_KEYSTORE_PASSWORD
    # scrypt cost of custodial keystores; 2**14 keeps wallet creation fast, raise it in production.
    keystore_scrypt_n: int = 2**14
    # wallets/keystore.py's low-cost test profile ("test": scrypt n >= 2**10); refused in production.
    keystore_cost: Literal["standard", "test"] = "standard"

    # Key of the HMAC that turns identity references into the hashes stored on chain (an ID
    # number has too little entropy for a bare hash).
    identity_pepper: str = LOCAL_IDENTITY_PEPPER

    # Ether sent to each new custodial wallet so it can pay gas (0 on a free-gas network).
    gas_topup_wei: int = 10**17
    confirmations: int = 0
    receipt_timeout_s: float = 30.0
    # One JSON-RPC call. A node that is down refuses at once; this bounds a node that accepts and
    # does not answer (hung): the request then answers 503 node-unavailable after this long (a
    # timeout is not retried: chain/backends.py). The slowest call of the services on anvil (a
    # log range of the reconciliation) takes well under a second.
    rpc_timeout_s: float = Field(default=20.0, gt=0)
    # Rows per explicit-batch chunk (and per Merkle push) the service sends; the contract's
    # maximum (200) by default: each chunk costs two transactions (addRows, payChunk), four
    # commits and a receipt, so the fewer the chunks the faster the payroll (issue 19). Smaller
    # chunks show progress sooner and keep each transaction short.
    disburse_chunk_rows: int = Field(default=200, ge=1, le=200)
    reconcile_interval_s: float = 5.0

    # Hostile input (services/common/guard.py). Request bodies: at most ``max_body_bytes`` (JSON
    # routes) or ``max_upload_bytes`` (the CSV upload routes, paths ending in /csv), refused with
    # 413 from Content-Length or while streaming; JSON nested at most ``max_json_depth`` deep.
    max_body_bytes: int = Field(default=1 * MiB, ge=1024)
    max_upload_bytes: int = Field(default=16 * MiB, ge=1024)
    max_json_depth: int = Field(default=32, ge=2, le=1000)
    # Rate limits (token buckets, one per client address and one per API key; 429 with
    # Retry-After). ``rate_limit`` unset: on in the production profile, off in the local one
    # (tests, benchmarks and `make run` on one machine). Sustained requests per second and burst.
    rate_limit: bool | None = None
    rate_per_address_per_s: float = Field(default=50.0, gt=0)
    rate_burst_per_address: int = Field(default=200, ge=1)
    rate_per_key_per_s: float = Field(default=20.0, gt=0)
    rate_burst_per_key: int = Field(default=100, ge=1)
    # The HTTP server (services/common/serve.py). The request line and headers together may be at
    # most ``max_header_bytes`` (h11 stops buffering there and answers 400 and closes), so a huge
    # header, or thousands of them, never grows the process: the guard sees requests only after
    # all their headers are read.
    max_header_bytes: int = Field(default=64 * 1024, ge=4096, le=16 * MiB)
    # Addresses (or networks) of reverse proxies whose X-Forwarded-For / X-Forwarded-Proto are
    # believed, comma-separated, e.g. "10.0.0.5,10.0.1.0/24". Empty (the default): no forwarded
    # header is believed, so the client address in the rate limit and the access log is the peer's.
    trusted_proxies: str = ""
    # Seconds an idle kept-alive connection stays open. Longer than a client's own idle expiry
    # (httpx 5 s, browsers ~60 s): at uvicorn's default of 5 s the server could close a pooled
    # connection just as a client sent on it, and that request got no answer ("server
    # disconnected", one in 4,680 requests of the 50-client load test).
    keep_alive_s: int = Field(default=75, ge=1, le=3600)

    # Webhooks (services/common/webhooks.py). The hosts an endpoint may name, comma-separated
    # (exact names or IP literals; "*" allows any): the operator's own network reaches only what
    # is listed here (SSRF). The default allows this machine only, for the demo.
    webhook_allowed_hosts: str = "localhost,127.0.0.1,::1"
    # The delivery worker looks for due deliveries this often; each attempt waits at most
    # ``webhook_timeout_s``. A failed attempt is retried after backoff * 2**(attempt-1) seconds,
    # capped at ``webhook_backoff_max_s``; after ``webhook_max_attempts`` the delivery is failed
    # (it can be replayed).
    webhook_poll_s: float = Field(default=1.0, gt=0)
    webhook_timeout_s: float = Field(default=10.0, gt=0)
    webhook_backoff_s: float = Field(default=10.0, gt=0)
    webhook_backoff_max_s: float = Field(default=3600.0, gt=0)
    webhook_max_attempts: int = Field(default=10, ge=1, le=100)

    @property
    def rate_limited(self) -> bool:
        """Whether the rate limits apply (see ``rate_limit``)."""
        return self.profile == "production" if self.rate_limit is None else self.rate_limit

    @model_validator(mode="after")
    def _refuse_default_secrets(self) -> Settings:
        if self.profile == "local":
            return self
        problems = self.production_problems()
        if problems:
            raise ValueError("refusing to start in the production profile: " + "; ".join(problems))
        return self

    def production_problems(self) -> list[str]:
        """What keeps these settings from the production profile, one sentence each (an app's
        settings add theirs), so that one start names every missing secret at once."""
        problems = []
        if self.keystore_password == LOCAL_KEYSTORE_PASSWORD or _weak(self.keystore_password, MIN_PASSWORD):
            problems.append(
                "XCPAY_KEYSTORE_PASSWORD must be a non-default secret of at least "
                f"{MIN_PASSWORD[0]} characters with {MIN_PASSWORD[1]} or more different ones"
            )
        if self.identity_pepper == LOCAL_IDENTITY_PEPPER or _weak(self.identity_pepper, MIN_PEPPER):
            problems.append(
                "XCPAY_IDENTITY_PEPPER must be a non-default random secret of at least "
                f"{MIN_PEPPER[0]} characters with {MIN_PEPPER[1]} or more different ones"
            )
        n = self.keystore_scrypt_n
        if n < MIN_SCRYPT_N or n & (n - 1):
            problems.append(f"XCPAY_KEYSTORE_SCRYPT_N must be a power of 2, at least {MIN_SCRYPT_N} (2**17)")
        if self.keystore_cost != "standard":
            problems.append("XCPAY_KEYSTORE_COST=test is the test suites' low-cost profile; unset it")
        for role in ("operator", "regulator"):
            if getattr(self, f"{role}_keystore") is None:
                problems.append(f"XCPAY_{role.upper()}_KEYSTORE must point to an encrypted keystore")
            elif not (getattr(self, f"{role}_password") or getattr(self, f"{role}_password_file")):
                problems.append(f"XCPAY_{role.upper()}_PASSWORD or _PASSWORD_FILE must be set")
        return problems

    @cached_property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")
