"""The database: SQLAlchemy models, engines and sessions, Alembic migrations, the serial."""
