"""Assign many seats from a CSV file, all or nothing.

The file has a header row naming its columns, ``username`` and/or ``email`` (in any order and
case), then one learner a row: a user name gives an active seat, an e-mail address alone an
invitation. Every row is checked before anything is written, inside the transaction that holds
the cohort's lock; one bad row and no seat is assigned, and the error lists every bad row as
``source:line: problem``, as a compiler would.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.orm import Session

from grader.seats import store
from grader.seats.models import Seat

COLUMNS = ("username", "email")


class CsvImportError(store.SeatsError):
    """A CSV file with bad rows; ``problems`` holds one ``source:line: problem`` per bad row."""

    def __init__(self, problems: list[str], *, source: str):
        self.problems = problems
        super().__init__(f"{source}: {len(problems)} bad row(s), no seat was assigned:\n" + "\n".join(problems))


@dataclass(frozen=True)
class _Row:
    line: int
    username: str | None
    email: str | None

    @property
    def who(self) -> str:
        return f"user {self.username!r}" if self.username else repr(self.email)


def _parse(csv_text: str, source: str) -> tuple[list[_Row], list[str]]:
    """The rows of the file and the problems that need no database to see."""
    # Spreadsheets save UTF-8 CSV with a byte-order mark.
    reader = csv.reader(io.StringIO(csv_text.lstrip("\ufeff")))
    header = next(reader, None)
    if header is None or not any(cell.strip() for cell in header):
        return [], [f"{source}:1: no header row (expected columns: {', '.join(COLUMNS)})"]
    names = [cell.strip().lower() for cell in header]
    problems = [f"{source}:1: unknown column {cell.strip()!r} (expected columns: {', '.join(COLUMNS)})"
                for cell, name in zip(header, names) if name not in COLUMNS]
    problems += [f"{source}:1: column {name!r} appears twice" for name in COLUMNS if names.count(name) > 1]
    if problems:
        return [], problems

    rows: list[_Row] = []
    first_line: dict[str, int] = {}
    for cells in reader:
        line = reader.line_num
        if not any(cell.strip() for cell in cells):
            problems.append(f"{source}:{line}: empty row")
            continue
        if len(cells) != len(names):
            problems.append(f"{source}:{line}: {len(cells)} field(s), the header has {len(names)}")
            continue
        values = {name: cell.strip() or None for name, cell in zip(names, cells)}
        username, email = values.get("username"), values.get("email")
        if username is None and email is None:
            problems.append(f"{source}:{line}: neither a username nor an email")
            continue
        if username is not None and any(c.isspace() for c in username):
            problems.append(f"{source}:{line}: user name {username!r} contains a space")
            continue
        if email is not None:
            try:
                email = store.normalise_email(email)
            except store.SeatsError as error:
                problems.append(f"{source}:{line}: {error}")
                continue
        row = _Row(line=line, username=username, email=email)
        repeated = [key for key in (f"u:{username}" if username else None, f"e:{email}" if email else None)
                    if key is not None and key in first_line]
        if repeated:
            problems.append(f"{source}:{line}: {row.who} is already on line {first_line[repeated[0]]}")
            continue
        for key in (f"u:{username}" if username else None, f"e:{email}" if email else None):
            if key is not None:
                first_line[key] = line
        rows.append(row)
    return rows, problems


def bulk_assign(session: Session, *, cohort_id: int, csv_text: str, source: str,
                now: datetime | None = None) -> list[Seat]:
    """Assign a seat to every row of ``csv_text`` (read from ``source``, named in errors), or to none.

    Raises CsvImportError listing every bad row: unknown column, empty row, bad e-mail, duplicate
    in the file, a learner who already has a seat, rows beyond the seats left.
    """
    rows, problems = _parse(csv_text, source)
    now = store.moment(now)
    with store.write_transaction(session):
        cohort = store.lock_cohort(session, cohort_id=cohort_id)
        free = []
        for row in rows:
            taken = store.seat_holders_taken(session, cohort=cohort, username=row.username, email=row.email)
            for who, seat in taken:
                problems.append(f"{source}:{row.line}: {who} already has a seat in cohort {cohort.name!r} "
                                f"(seat {seat.id}, {seat.state})")
            if not taken:
                free.append(row)
        left = store.seats_left(session, cohort_id=cohort_id)
        for row in free[max(left, 0):]:
            problems.append(f"{source}:{row.line}: no seat left for {row.who} (cohort {cohort.name!r} has "
                            f"{left} seat(s) left and the file asks for {len(free)})")
        if problems:
            # Sorted by line, as an editor would walk them; raising rolls the transaction back.
            problems.sort(key=lambda p: int(p[len(source) + 1:].split(":", 1)[0]))
            raise CsvImportError(problems, source=source)
        return [store.add_seat_locked(session, cohort, username=row.username, email=row.email, now=now)
                for row in rows]
