"""The hard-wallet gateway: terminals, offline payment upload and settlement, cards, door access,
canteen terminals and quick-pay mandates, on the operator's backbone (``services/common``)."""
