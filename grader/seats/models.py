"""The seats tables: organisation → cohort → seat, plus the usage records metered from the hub.

Timestamps are stored as naive UTC (the one form SQLite and PostgreSQL share) and come back as
aware UTC datetimes; a naive datetime handed in is taken to be UTC already. Changing a table
here needs a new Alembic revision in ``migrations/versions`` (``tests/seats/test_migrations.py``
fails while the models and the migrations disagree).
"""

from __future__ import annotations

from datetime import date, datetime, timezone

from sqlalchemy import JSON, CheckConstraint, Date, DateTime, ForeignKey, Index, Integer, MetaData, String, text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.types import TypeDecorator

SEAT_STATES = ("invited", "active", "revoked")

# Named constraints, so later migrations (batch mode on SQLite) can address them by name.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator):
    """A timestamp kept as naive UTC in the database and handed back as aware UTC."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is not None and value.tzinfo is not None:
            value = value.astimezone(timezone.utc).replace(tzinfo=None)
        return value

    def process_result_value(self, value, dialect):
        return value.replace(tzinfo=timezone.utc) if value is not None else None


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def utc_today() -> date:
    """The calendar day cohorts are opened and closed by: UTC, as the usage records are."""
    return utcnow().date()


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class Organisation(Base):
    """A customer that buys seats; ``contact_email`` is shown to its learners who are refused."""

    __tablename__ = "organisations"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    contact_email: Mapped[str] = mapped_column(String(320))

    cohorts: Mapped[list[Cohort]] = relationship(back_populates="organisation", order_by="Cohort.id")


class OrgAdmin(Base):
    """A hub user who administers the cohorts of one organisation (a cohort admin)."""

    __tablename__ = "org_admins"

    organisation_id: Mapped[int] = mapped_column(ForeignKey("organisations.id", ondelete="CASCADE"), primary_key=True)
    username: Mapped[str] = mapped_column(String(255), primary_key=True)


class Cohort(Base):
    """Seats in one course for a period: open from ``starts_on`` to ``ends_on``, both inclusive."""

    __tablename__ = "cohorts"
    __table_args__ = (
        CheckConstraint("seat_limit >= 0", name="seat_limit_not_negative"),
        CheckConstraint("ends_on >= starts_on", name="ends_after_start"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    organisation_id: Mapped[int] = mapped_column(ForeignKey("organisations.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    course_id: Mapped[str] = mapped_column(String(100))
    starts_on: Mapped[date] = mapped_column(Date)
    ends_on: Mapped[date] = mapped_column(Date)
    seat_limit: Mapped[int] = mapped_column(Integer)
    # Spawn profile slugs the seats include, e.g. ["cpu"] or ["cpu", "gpu"].
    profiles: Mapped[list[str]] = mapped_column(JSON, default=list)

    organisation: Mapped[Organisation] = relationship(back_populates="cohorts")

    def is_open(self, today: date) -> bool:
        return self.starts_on <= today <= self.ends_on


class Seat(Base):
    """One seat of a cohort: invited by e-mail (no user yet), active for a user, or revoked.

    Revoked seats stay as history and no longer count against the cohort's limit.
    """

    __tablename__ = "seats"
    __table_args__ = (
        CheckConstraint("state IN ('invited', 'active', 'revoked')", name="known_state"),
        CheckConstraint("username IS NOT NULL OR email IS NOT NULL", name="has_holder"),
        # At most one live seat per user and per invited address in a cohort; the database
        # enforces it, so two racing assignments cannot both win.
        Index("uq_seats_live_user", "cohort_id", "username", unique=True,
              sqlite_where=text("state != 'revoked'"), postgresql_where=text("state != 'revoked'")),
        Index("uq_seats_live_email", "cohort_id", "email", unique=True,
              sqlite_where=text("state != 'revoked'"), postgresql_where=text("state != 'revoked'")),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    cohort_id: Mapped[int] = mapped_column(ForeignKey("cohorts.id", ondelete="CASCADE"), index=True)
    # None until an e-mail invitation is claimed by a hub user.
    username: Mapped[str | None] = mapped_column(String(255), index=True)
    email: Mapped[str | None] = mapped_column(String(320), index=True)
    state: Mapped[str] = mapped_column(String(16))
    invited_at: Mapped[datetime] = mapped_column(UTCDateTime())
    activated_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    cohort: Mapped[Cohort] = relationship()


class UsageRecord(Base):
    """One run of a user's server: which profile, how many GPUs, from when to when."""

    __tablename__ = "usage_records"

    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(255), index=True)
    # The cohort the run is billed to; None when the user had no seat (e.g. staff).
    cohort_id: Mapped[int | None] = mapped_column(ForeignKey("cohorts.id", ondelete="SET NULL"), index=True)
    profile: Mapped[str] = mapped_column(String(100))
    gpus: Mapped[int] = mapped_column(Integer, default=0)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime())
    # None while the server is running.
    stopped_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class LessonRun(Base):
    """A lesson a user ran: reported by their own server (see :mod:`grader.seats.lesson_reports`)
    the first time it saved the lesson with an executed code cell; ``last_run_at`` is the latest report."""

    __tablename__ = "lesson_runs"

    username: Mapped[str] = mapped_column(String(255), primary_key=True)
    # The notebook's path under the learner's ~/courses, e.g. "01_python/01_basics.ipynb".
    lesson: Mapped[str] = mapped_column(String(500), primary_key=True)
    first_run_at: Mapped[datetime] = mapped_column(UTCDateTime())
    last_run_at: Mapped[datetime] = mapped_column(UTCDateTime())
