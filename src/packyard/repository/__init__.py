"""The read path: a chain of components that all speak `Repository` (DESIGN §2)."""
