"""Security tests: each drives a real server as an attacker would (issue "Hardening")."""
