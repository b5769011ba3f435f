"""Known vulnerabilities: OSV records imported, matched to releases, enforced by policy."""
