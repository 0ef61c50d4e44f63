"""The gateway's own settings (its address, its signing key, door challenges) on top of the
shared ones; same ``XCPAY_`` variables."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from services.common.settings import Settings


class GatewaySettings(Settings):
    """The shared settings plus the gateway's own."""

    gateway_host: str = "127.0.0.1"
    gateway_port: int = Field(default=8001, ge=1, le=65535)
    # How long a door reader's challenge may be answered (it is also single-use).
    access_challenge_ttl_s: int = Field(default=30, ge=1, le=300)
    # The gateway's own signing key (an Ethereum v3 keystore and its password, or a file holding
    # it); development account 10 in the local profile.
    gateway_keystore: Path | None = None
    gateway_password: str | None = None
    gateway_password_file: Path | None = None

    def production_problems(self) -> list[str]:
        problems = super().production_problems()
        if self.gateway_keystore is None:
            problems.append("XCPAY_GATEWAY_KEYSTORE must point to an encrypted keystore")
        elif not (self.gateway_password or self.gateway_password_file):
            problems.append("XCPAY_GATEWAY_PASSWORD or _PASSWORD_FILE must be set")
        return problems
