"""Keystores, soft wallets and the hard-wallet (secure element) simulator (later issues)."""
