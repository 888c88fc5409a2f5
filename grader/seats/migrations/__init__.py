"""Alembic migrations of the seats database (applied by :func:`grader.seats.db.open_seats_db`)."""
