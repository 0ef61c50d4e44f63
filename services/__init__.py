"""FastAPI services: the operator API and the hard-wallet gateway (later issues)."""
