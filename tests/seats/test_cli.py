"""``grader seats ...`` run in-process through grader.cli.main: output, files and exit codes.

The date is taken once per test (:func:`clock`): the seats code's one clock is pinned to it, so the
cohort's dates, the seats given and the invoice agree even when a run crosses midnight UTC."""

from __future__ import annotations

import calendar
import csv
import io
from dataclasses import dataclass
from datetime import date, datetime, timezone

import pytest
import yaml

from grader.cli import main
from grader.seats import store
from grader.seats.db import close_seats_db, open_seats_db
from tests.support import FIXTURES
from tests.support.seats_backends import postgres_server, seats_url  # noqa: F401 (fixtures)

FILES = FIXTURES / "seats"


@dataclass(frozen=True)
class Clock:
    now: datetime

    @property
    def today(self) -> date:
        return self.now.date()

    @property
    def first(self) -> date:
        return self.today.replace(day=1)

    @property
    def last(self) -> date:
        return self.first.replace(day=calendar.monthrange(self.first.year, self.first.month)[1])


@pytest.fixture
def clock(monkeypatch) -> Clock:
    """The moment of this test, read once: the seats code reads the time only through
    ``grader.seats.store.utcnow`` (and each command once, ``args.now``), pinned here to it."""
    pinned = Clock(datetime.now(timezone.utc))
    monkeypatch.setattr("grader.seats.store.utcnow", lambda: pinned.now)
    return pinned


@pytest.fixture
def grader_seats(capsys, seats_url, clock):
    """Run ``grader seats ARGS --db URL``; (exit code, stdout, stderr)."""
    close_seats_db(open_seats_db(seats_url))  # the database exists, as the hub made it

    def run(*args: str) -> tuple[int, str, str]:
        code = main(["seats", *args, "--db", seats_url])
        out, err = capsys.readouterr()
        assert "Traceback" not in out + err
        return code, out, err

    run.url = seats_url
    run.clock = clock
    return run


def _setup(grader_seats, seats=3):
    clock = grader_seats.clock
    assert grader_seats("org", "add", "Acme", "--contact", "training@acme.example", "--admin", "carol")[0] == 0
    # Open from the first of this month: the seats are given today.
    code, out, _ = grader_seats("cohort", "add", "Acme", "spring", "--course", "ai101", "--starts", str(clock.first),
                                "--ends", str(clock.last), "--seats", str(seats), "--profile", "cpu", "--profile", "gpu")
    assert code == 0 and "added cohort spring (id 1)" in out


def test_a_cohort_from_the_shell(grader_seats, tmp_path):
    clock = grader_seats.clock
    _setup(grader_seats)
    code, out, _ = grader_seats("assign", "1", "--user", "alice")
    assert (code, out.strip()) == (0, "seat 1: alice active in cohort spring (2 left)")
    staff = tmp_path / "staff.csv"
    staff.write_text("email\nbob@example.com\nbea@example.com\n")
    code, out, _ = grader_seats("import", "1", str(staff))
    assert code == 0 and "assigned 2 seat(s)" in out and "2 invitation(s)" in out

    code, _, err = grader_seats("assign", "1", "--user", "zoe")
    assert code == 2 and err.strip() == "grader seats: cohort 'spring' has no seats left (all 3 are taken)"

    code, out, _ = grader_seats("revoke", "1")
    assert (code, out.strip()) == (0, "revoked seat 1 (alice) in cohort spring (1 left)")
    code, out, _ = grader_seats("list", "1")
    assert code == 0
    table = [line.split() for line in out.splitlines()]
    assert [row[:2] + row[-2:-1] for row in table[1:4]] == [["1", "alice", "revoked"], ["2", "bob@example.com", "invited"],
                                                             ["3", "bea@example.com", "invited"]]
    assert out.splitlines()[-1] == "spring: 1 of 3 seats left"

    code, out, _ = grader_seats("access", "alice")
    assert code == 1 and "refused (revoked)" in out and "training@acme.example" in out

    code, out, _ = grader_seats("usage", "1", "--csv")
    assert code == 0
    rows = list(csv.DictReader(io.StringIO(out)))
    assert [(r["username"], r["email"], r["state"]) for r in rows] == [
        ("alice", "", "revoked"), ("", "bob@example.com", "invited"), ("", "bea@example.com", "invited")]

    code, out, _ = grader_seats("invoice", "Acme", "--month", f"{clock.today:%Y-%m}", "--csv", str(tmp_path / "invoice.csv"))
    assert code == 0 and "wrote" in out
    lines = list(csv.DictReader((tmp_path / "invoice.csv").open()))
    # Alice's seat was revoked the day it was given (not billed); the two invitations run to the month's end.
    days_left = (clock.last - clock.today).days + 1
    assert [(l["organisation"], l["cohort"], l["seat_days"], l["gpu_hours"]) for l in lines] == [
        ("Acme", "spring", str(2 * days_left), "0.00")]

    code, out, _ = grader_seats("org", "list")
    assert code == 0 and "training@acme.example" in out
    code, out, _ = grader_seats("cohort", "list", "Acme")
    assert code == 0 and out.splitlines()[1].split() == ["1", "spring", "ai101", str(clock.first), str(clock.last), "3", "1",
                                                         "cpu,gpu"]

    factory = open_seats_db(grader_seats.url)
    try:
        with factory() as session:
            assert [o.name for o in store.organisations_administered_by(session, username="carol")] == ["Acme"]
            assert store.seats_left(session, cohort_id=1) == 1
    finally:
        close_seats_db(factory)


def test_a_bad_csv_row_fails_with_its_line_and_assigns_nothing(grader_seats):
    _setup(grader_seats, seats=10)
    code, out, err = grader_seats("import", "1", str(FILES / "bad-email-line4.csv"))
    assert code == 2 and out == ""
    assert "1 bad row(s), no seat was assigned" in err
    assert f"{FILES / 'bad-email-line4.csv'}:4: 'not-an-address' is not an e-mail address" in err
    code, out, _ = grader_seats("list", "1")
    assert out.splitlines()[-1] == "spring: 10 of 10 seats left"


def test_refusals_exit_2_with_the_reason(grader_seats, capsys):
    _setup(grader_seats)
    assert grader_seats("assign", "1", "--user", "alice")[0] == 0
    for args, reason in [
        (("assign", "9", "--user", "alice"), "grader seats: no cohort with id 9"),
        (("revoke", "5"), "grader seats: no seat with id 5"),
        (("cohort", "list", "Initech"), "grader seats: no organisation 'Initech'"),
        (("org", "add", "Acme", "--contact", "x@acme.example"), "grader seats: an organisation called 'Acme' already exists"),
        (("invoice", "Acme", "--month", "April"), "grader seats: month 'April': expected YYYY-MM, e.g. 2026-03"),
        (("import", "1", "missing.csv"), "grader seats: missing.csv: cannot read it"),
        (("cohort", "add", "Acme", "x", "--course", "ai101", "--starts", "2026-05-01", "--ends", "2026-04-01",
          "--seats", "1"), "grader seats: cohort 'x' ends (2026-04-01) before it starts (2026-05-01)"),
        (("assign", "1", "--user", "alice"), "grader seats: user 'alice' already has a seat in cohort 'spring'"),
    ]:
        code, out, err = grader_seats(*args)
        assert code == 2 and err.startswith(reason), (args, err)

    # Malformed arguments are argparse's: exit 2 with the usage line, no traceback.
    with pytest.raises(SystemExit) as raised:
        main(["seats", "cohort", "add", "Acme", "x", "--course", "ai101", "--starts", "2026-13-01",
              "--ends", "2026-12-31", "--seats", "1", "--db", grader_seats.url])
    assert raised.value.code == 2
    assert "'2026-13-01' is not a date (expected YYYY-MM-DD)" in capsys.readouterr().err


def test_an_unreachable_database_is_named(capsys, tmp_path):
    code = main(["seats", "--db", "postgresql://seats@127.0.0.1:1/seats", "org", "list"])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("grader seats: cannot open the seats database postgresql://seats@127.0.0.1:1/seats (from --db): ")
    code = main(["seats", "list", "1", "--db", "sqlite://"])
    err = capsys.readouterr().err
    assert code == 2 and "must be a file" in err


def _hub_settings(tmp_path, monkeypatch, **seats) -> None:
    """A hub's platform YAML in AICOURSE_CONFIG, with its data folder; no --db, no GRADER_SEATS_DB."""
    config = tmp_path / "hub" / "platform.yaml"
    config.parent.mkdir()
    config.write_text(yaml.safe_dump({"data_dir": str(tmp_path / "hub-data"), "seats": {"enabled": True, **seats}}))
    monkeypatch.setenv("AICOURSE_CONFIG", str(config))
    monkeypatch.delenv("GRADER_SEATS_DB", raising=False)
    monkeypatch.delenv("AICOURSE_DATA_DIR", raising=False)


def test_the_database_is_the_hubs_from_any_folder_and_a_missing_one_is_named(capsys, tmp_path, monkeypatch):
    _hub_settings(tmp_path, monkeypatch)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    hub_db = tmp_path / "hub-data" / "seats.sqlite"

    # Before the hub made it: an error naming the file and where it came from, and no file made anywhere.
    assert main(["seats", "org", "list"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"grader seats: no seats database at {hub_db} (from data_dir of the hub's settings, "
                          f"{tmp_path / 'hub' / 'platform.yaml'})"), err
    assert "grader-admin seats init" in err
    assert not hub_db.exists() and list(elsewhere.iterdir()) == []

    assert main(["seats", "init"]) == 0
    assert capsys.readouterr().out.strip() == f"seats database ready: sqlite:///{hub_db} (from data_dir of the hub's settings, {tmp_path / 'hub' / 'platform.yaml'})"
    assert main(["seats", "org", "add", "Acme", "--contact", "t@acme.example"]) == 0
    assert list(elsewhere.iterdir()) == []  # nothing in the folder it ran from
    capsys.readouterr()

    # $GRADER_SEATS_DB (the seats service's variable) beats the settings, and --db beats both.
    other = tmp_path / "other.sqlite"
    close_seats_db(open_seats_db(f"sqlite:///{other}"))
    monkeypatch.setenv("GRADER_SEATS_DB", f"sqlite:///{other}")
    assert main(["seats", "org", "list"]) == 0
    assert "Acme" not in capsys.readouterr().out
    assert main(["seats", "--db", f"sqlite:///{hub_db}", "org", "list"]) == 0
    assert "Acme" in capsys.readouterr().out

    # A typo in --db is a missing file, named, never a new empty database.
    assert main(["seats", "org", "list", "--db", f"sqlite:///{tmp_path / 'seat.sqlite'}"]) == 2
    assert capsys.readouterr().err.startswith(f"grader seats: no seats database at {tmp_path / 'seat.sqlite'} (from --db)")
    assert not (tmp_path / "seat.sqlite").exists()

    with pytest.raises(SystemExit) as raised:
        main(["seats", "assign", "--help"])
    assert raised.value.code == 0
    assert "GRADER_SEATS_DB" in capsys.readouterr().out


def test_the_settings_db_url_is_used_and_a_database_without_seats_tables_is_refused(capsys, tmp_path, monkeypatch):
    not_seats = tmp_path / "gradebook.db"
    import sqlite3

    with sqlite3.connect(not_seats) as connection:
        connection.execute("CREATE TABLE assignment (id TEXT)")
    _hub_settings(tmp_path, monkeypatch, db_url=f"sqlite:///{not_seats}")
    assert main(["seats", "org", "list"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"grader seats: sqlite:///{not_seats} holds no seats tables (from seats.db_url of the hub's "
                          "settings"), err
    with sqlite3.connect(not_seats) as connection:
        assert [row[0] for row in connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")] == ["assignment"]


def test_unreadable_hub_settings_are_named(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("AICOURSE_CONFIG", str(tmp_path / "missing.yaml"))
    monkeypatch.delenv("GRADER_SEATS_DB", raising=False)
    assert main(["seats", "org", "list"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("grader seats: cannot read the hub's settings, which name the seats database: ") and \
        "missing.yaml" in err, err
