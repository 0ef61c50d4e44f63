"""The devices family's dashboard section: DevicePayments' totals (held for open
pre-authorisations and programme budgets); its event counts come from the registry's panel."""

from __future__ import annotations

from typing import Any

from services.common.panels import PanelView


def section(view: PanelView) -> dict[str, Any]:
    return view.memo(lambda: {f"{k}_fen": v for k, v in view.ctx.devices.totals().items()})
