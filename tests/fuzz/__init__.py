"""API fuzzing of both services' OpenAPI schemas with Schemathesis over real HTTP."""
