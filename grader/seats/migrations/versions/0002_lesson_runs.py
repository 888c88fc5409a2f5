"""Lessons run, as learners' servers report them (the hub's disk does not have homes on Kubernetes).

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "lesson_runs",
        sa.Column("username", sa.String(length=255), nullable=False),
        sa.Column("lesson", sa.String(length=500), nullable=False),
        sa.Column("first_run_at", sa.DateTime(), nullable=False),
        sa.Column("last_run_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("username", "lesson", name=op.f("pk_lesson_runs")),
    )


def downgrade() -> None:
    op.drop_table("lesson_runs")
