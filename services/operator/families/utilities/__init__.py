"""The utilities family (水电燃气缴费, issue 23): billers (water, power, gas) with their account-number
scheme, their bills (one per account and period), paid by account number (a direct payment from a
custodial wallet, or a payment code of the paycodes family, any payer form) or by a resident's
auto-debit (a QuickPay mandate with the biller's cap, run by the background worker on the biller's
debit day, idempotent across restarts), and the biller's daily settlement file (CSV).

No contract of its own: bills are paid in digital cash (``DigitalCash.transfer``), by a payment
code, or by ``QuickPay.pull``; the chain's own guards (a code's bill reference, a mandate's
order reference) back the service's one-payment-per-bill claim."""

from __future__ import annotations

from services.common.families import FamilyModule
from services.operator.families.utilities import builders, routes

MODULE = FamilyModule(name="utilities", routers=(routes.router,), builders=builders.BUILDERS)
