"""``grader seats ...`` run in-process through grader.cli.main: output, files and exit codes."""

from __future__ import annotations

import calendar
import csv
import io
from datetime import date

import pytest

from grader.cli import main
from grader.seats import store
from grader.seats.db import close_seats_db, open_seats_db
from tests.support import FIXTURES
from tests.support.seats_backends import postgres_server, seats_url  # noqa: F401 (fixtures)

FILES = FIXTURES / "seats"
TODAY = date.today()
FIRST = TODAY.replace(day=1)
LAST = FIRST.replace(day=calendar.monthrange(FIRST.year, FIRST.month)[1])


@pytest.fixture
def grader_seats(capsys, seats_url):
    """Run ``grader seats ARGS --db URL``; (exit code, stdout, stderr)."""

    def run(*args: str) -> tuple[int, str, str]:
        code = main(["seats", *args, "--db", seats_url])
        out, err = capsys.readouterr()
        assert "Traceback" not in out + err
        return code, out, err

    run.url = seats_url
    return run


def _setup(grader_seats, seats=3):
    assert grader_seats("org", "add", "Acme", "--contact", "training@acme.example", "--admin", "carol")[0] == 0
    # Open from the first of this month, as the CLI gives seats today (it takes no clock).
    code, out, _ = grader_seats("cohort", "add", "Acme", "spring", "--course", "ai101", "--starts", str(FIRST),
                                "--ends", str(LAST), "--seats", str(seats), "--profile", "cpu", "--profile", "gpu")
    assert code == 0 and "added cohort spring (id 1)" in out


def test_a_cohort_from_the_shell(grader_seats, tmp_path):
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

    code, out, _ = grader_seats("invoice", "Acme", "--month", f"{TODAY:%Y-%m}", "--csv", str(tmp_path / "invoice.csv"))
    assert code == 0 and "wrote" in out
    lines = list(csv.DictReader((tmp_path / "invoice.csv").open()))
    # Alice's seat was revoked the day it was given (not billed); the two invitations run to the month's end.
    days_left = (LAST - TODAY).days + 1
    assert [(l["organisation"], l["cohort"], l["seat_days"], l["gpu_hours"]) for l in lines] == [
        ("Acme", "spring", str(2 * days_left), "0.00")]

    code, out, _ = grader_seats("org", "list")
    assert code == 0 and "training@acme.example" in out
    code, out, _ = grader_seats("cohort", "list", "Acme")
    assert code == 0 and out.splitlines()[1].split() == ["1", "spring", "ai101", str(FIRST), str(LAST), "3", "1", "cpu,gpu"]

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
    assert code == 2 and err.startswith("grader seats: cannot open the seats database postgresql://seats@127.0.0.1:1/seats: ")
    code = main(["seats", "list", "1", "--db", "sqlite://"])
    err = capsys.readouterr().err
    assert code == 2 and "must be a file" in err


def test_the_default_database_is_the_env_variable_else_the_current_directory(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("GRADER_SEATS_DB", raising=False)
    assert main(["seats", "org", "add", "Acme", "--contact", "t@acme.example"]) == 0
    assert (tmp_path / "seats.sqlite").is_file()

    elsewhere = tmp_path / "elsewhere" / "seats.db"
    monkeypatch.setenv("GRADER_SEATS_DB", f"sqlite:///{elsewhere}")
    assert main(["seats", "org", "add", "Globex", "--contact", "t@globex.example"]) == 0
    capsys.readouterr()
    assert main(["seats", "org", "list"]) == 0
    listed = capsys.readouterr().out
    assert "Globex" in listed and "Acme" not in listed
    # --db beats the variable.
    assert main(["seats", "--db", f"sqlite:///{tmp_path / 'seats.sqlite'}", "org", "list"]) == 0
    assert "Acme" in capsys.readouterr().out

    with pytest.raises(SystemExit) as raised:
        main(["seats", "assign", "--help"])
    assert raised.value.code == 0
    assert "GRADER_SEATS_DB" in capsys.readouterr().out
