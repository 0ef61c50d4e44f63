"""The gateway's platform routes, which belong to no family (health, an operation's state).

The families' routes and operation builders are in ``services/gateway/families/``."""

from services.gateway.routes import health

ROUTERS = [health.router]
