"""Tasks: the Harbor task model and IO, procedural families, the verifier, corpora and quality gates."""
