"""The operator service's own settings (its address, the admin key, the event indexer, the
auditor's background refresh) on top of the shared ones; same ``XCPAY_`` variables."""

from __future__ import annotations

from pydantic import Field

from services.common.settings import MIN_ADMIN_KEY, Settings, _weak


class OperatorSettings(Settings):
    """The shared settings plus the operator service's own."""

    # The first admin API key, stored hashed on the first start (generated and printed once when
    # unset in the local profile; required outside it).
    admin_api_key: str | None = None

    api_host: str = "127.0.0.1"
    api_port: int = Field(default=8000, ge=1, le=65535)

    index_interval_s: float = 2.0
    # Seconds between the operator service's background refreshes of the auditor's reconciliation
    # (incremental; GET /v1/audit/reconciliation/latest answers from the last one). Unset: every
    # 60 s in the production profile, off in the local one (tests, benchmarks); 0: off.
    reconciliation_refresh_s: float | None = Field(default=None, ge=0)
    # Seconds between rounds of the spot-check robot (抽检, services/operator/families/refunds/
    # spotcheck.py): each round probes the day's targets not probed yet (idempotent per Beijing day).
    # 0: off (the default: tests and benchmarks count their own transactions); 3600 is a usual value.
    spot_check_interval_s: float = Field(default=0.0, ge=0)

    @property
    def reconciliation_refresh(self) -> float:
        """Seconds between background reconciliations, 0 for none (see ``reconciliation_refresh_s``)."""
        if self.reconciliation_refresh_s is None:
            return 60.0 if self.profile == "production" else 0.0
        return self.reconciliation_refresh_s

    def production_problems(self) -> list[str]:
        problems = super().production_problems()
        if _weak(self.admin_api_key, MIN_ADMIN_KEY):
            problems.append(
                f"XCPAY_ADMIN_API_KEY must be set to a random key of at least {MIN_ADMIN_KEY[0]} "
                f"characters with {MIN_ADMIN_KEY[1]} or more different ones"
            )
        return problems
