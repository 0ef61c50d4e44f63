"""Keystores, the hard-wallet (secure element) simulator and the offline payment terminal.

- :mod:`wallets.keystore`: keys at rest (scrypt + AES-256-GCM or SM4-GCM; Ethereum v3).
- :mod:`wallets.hardwallet`: :class:`~wallets.hardwallet.HardWallet`, a card whose key never leaves it.
- :mod:`wallets.terminal`: :class:`~wallets.terminal.Terminal`, collects payments offline, uploads batches.
"""
