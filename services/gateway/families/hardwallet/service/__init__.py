"""The hard-wallet family's logic: what the routes call once a request is validated and authorised.

One module per resource, beside the route module of the same name (``routes/cards.py`` calls
``service/cards.py``). Terminals and access points are rows with an API key of their own; cards,
offline settlement and quick-pay mandates live on chain (``HardWalletSettlement``, ``QuickPay``),
read through the typed clients (``ctx.hardwallet``, ``ctx.quickpay``) and changed through
operations whose builders are in ``builders.py``.
"""
