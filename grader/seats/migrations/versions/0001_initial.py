"""Organisations, their cohort admins, cohorts, seats and usage records.

Revision ID: 0001
Revises:
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

# Same predicate as the models' partial unique indexes: revoked seats are history.
LIVE = sa.text("state != 'revoked'")


def upgrade() -> None:
    op.create_table(
        "organisations",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("contact_email", sa.String(length=320), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_organisations")),
        sa.UniqueConstraint("name", name=op.f("uq_organisations_name")),
    )
    op.create_table(
        "cohorts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("organisation_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("course_id", sa.String(length=100), nullable=False),
        sa.Column("starts_on", sa.Date(), nullable=False),
        sa.Column("ends_on", sa.Date(), nullable=False),
        sa.Column("seat_limit", sa.Integer(), nullable=False),
        sa.Column("profiles", sa.JSON(), nullable=False),
        sa.CheckConstraint("ends_on >= starts_on", name=op.f("ck_cohorts_ends_after_start")),
        sa.CheckConstraint("seat_limit >= 0", name=op.f("ck_cohorts_seat_limit_not_negative")),
        sa.ForeignKeyConstraint(["organisation_id"], ["organisations.id"], ondelete="CASCADE",
                                name=op.f("fk_cohorts_organisation_id_organisations")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_cohorts")),
    )
    op.create_index(op.f("ix_cohorts_organisation_id"), "cohorts", ["organisation_id"])
    op.create_table(
        "org_admins",
        sa.Column("organisation_id", sa.Integer(), nullable=False),
        sa.Column("username", sa.String(length=255), nullable=False),
        sa.ForeignKeyConstraint(["organisation_id"], ["organisations.id"], ondelete="CASCADE",
                                name=op.f("fk_org_admins_organisation_id_organisations")),
        sa.PrimaryKeyConstraint("organisation_id", "username", name=op.f("pk_org_admins")),
    )
    op.create_table(
        "seats",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("cohort_id", sa.Integer(), nullable=False),
        sa.Column("username", sa.String(length=255), nullable=True),
        sa.Column("email", sa.String(length=320), nullable=True),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("invited_at", sa.DateTime(), nullable=False),
        sa.Column("activated_at", sa.DateTime(), nullable=True),
        sa.Column("revoked_at", sa.DateTime(), nullable=True),
        sa.CheckConstraint("state IN ('invited', 'active', 'revoked')", name=op.f("ck_seats_known_state")),
        sa.CheckConstraint("username IS NOT NULL OR email IS NOT NULL", name=op.f("ck_seats_has_holder")),
        sa.ForeignKeyConstraint(["cohort_id"], ["cohorts.id"], ondelete="CASCADE",
                                name=op.f("fk_seats_cohort_id_cohorts")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_seats")),
    )
    op.create_index(op.f("ix_seats_cohort_id"), "seats", ["cohort_id"])
    op.create_index(op.f("ix_seats_email"), "seats", ["email"])
    op.create_index(op.f("ix_seats_username"), "seats", ["username"])
    op.create_index("uq_seats_live_email", "seats", ["cohort_id", "email"], unique=True,
                    sqlite_where=LIVE, postgresql_where=LIVE)
    op.create_index("uq_seats_live_user", "seats", ["cohort_id", "username"], unique=True,
                    sqlite_where=LIVE, postgresql_where=LIVE)
    op.create_table(
        "usage_records",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("username", sa.String(length=255), nullable=False),
        sa.Column("cohort_id", sa.Integer(), nullable=True),
        sa.Column("profile", sa.String(length=100), nullable=False),
        sa.Column("gpus", sa.Integer(), nullable=False),
        sa.Column("started_at", sa.DateTime(), nullable=False),
        sa.Column("stopped_at", sa.DateTime(), nullable=True),
        sa.ForeignKeyConstraint(["cohort_id"], ["cohorts.id"], ondelete="SET NULL",
                                name=op.f("fk_usage_records_cohort_id_cohorts")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_usage_records")),
    )
    op.create_index(op.f("ix_usage_records_cohort_id"), "usage_records", ["cohort_id"])
    op.create_index(op.f("ix_usage_records_username"), "usage_records", ["username"])


def downgrade() -> None:
    # Dropping a table drops its indexes on both SQLite and PostgreSQL.
    for table in ("usage_records", "seats", "org_admins", "cohorts", "organisations"):
        op.drop_table(table)
