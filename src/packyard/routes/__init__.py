"""The HTTP edge: each module answers one family of URLs (DESIGN §1, §4)."""
