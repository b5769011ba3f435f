"""Identities, passwords, API tokens, CI (OIDC) tokens and permissions."""
