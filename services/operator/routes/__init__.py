"""The operator API's platform routes, which belong to no family (the families' routes are in
``services/operator/families/``)."""

from services.operator.routes import api_keys, audit, dashboard, health, operations, webhooks

ROUTERS = [m.router for m in (health, api_keys, audit, operations, dashboard, webhooks)]
