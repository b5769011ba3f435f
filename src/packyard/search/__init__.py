"""Search over in-house projects and the public projects this server has seen.

`query` parses what a person types; `index` stores and ranks documents
(SQLite FTS5, or PostgreSQL full-text search); `recorder` is the hook in the
read chain that records every upstream project the chain serves; `sync`
keeps the in-house part of the index in step with the store.
"""
