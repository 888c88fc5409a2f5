"""Alembic revisions of the seats database, oldest first by ``down_revision``."""
