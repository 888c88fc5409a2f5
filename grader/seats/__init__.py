"""Enterprise cohort seats: organisations buy seats in a cohort of a course and assign them to staff.

``models`` holds the tables, ``db`` opens a database (SQLite by default, PostgreSQL by URL) and
brings it to the newest Alembic revision, ``store`` the transactions (assign, revoke, access),
``csv_import`` the all-or-nothing bulk assignment, ``reports`` usage rows and invoice lines, and
``commands`` the ``grader seats`` subcommands over them.
"""
