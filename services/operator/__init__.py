"""The operator API: what a demo operator drives over HTTP."""
