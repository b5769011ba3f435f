"""The write path: adding files to the in-house store (DESIGN §3)."""
