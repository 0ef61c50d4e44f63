"""The backbone the operator and the gateway share: settings, database, keys and roles,
idempotent operations with their reconciler, problem+json errors, audit log, event index."""
