"""grader.grading.resume: flags are stored with each record; a database from before flags is migrated."""

from __future__ import annotations

import json
import os
import sqlite3
from contextlib import closing

from grader.flags import Flag
from grader.grading.resume import GradedRecord, ProgressStore, fingerprint, record_flags

OLD_SCHEMA = """
CREATE TABLE graded (
    assignment_id TEXT NOT NULL, student_id TEXT NOT NULL, fingerprint TEXT NOT NULL, status TEXT NOT NULL,
    reason TEXT NOT NULL, changes TEXT NOT NULL, seconds REAL NOT NULL, finished_at REAL NOT NULL,
    PRIMARY KEY (assignment_id, student_id)
)
"""


def test_flags_round_trip(tmp_path):
    store = ProgressStore(tmp_path)
    flags = [Flag("files", "notes.txt: symlink to '/etc/shadow' skipped"), Flag("static", "cell 2 patches np.allclose")]
    store.mark_done(GradedRecord("a1", "sam", "f", "ok", "", ["x.ipynb: cell 't' appears 2 times"], 1.5, flags))
    (record,) = store.records("a1")
    assert record.flags == flags
    assert record_flags(record) == flags + [Flag("tamper", "x.ipynb: cell 't' appears 2 times")]


def test_an_old_database_is_migrated_and_its_changes_and_limits_read_as_flags(tmp_path):
    path = tmp_path / ".grader" / "progress.sqlite"
    path.parent.mkdir()
    with closing(sqlite3.connect(path)) as db, db:
        db.execute(OLD_SCHEMA)
        db.execute("INSERT INTO graded VALUES ('a1', 'ann', 'f1', 'ok', '', ?, 1.0, 0)",
                   (json.dumps(["a1.ipynb: locked cell 'test_x' edited; original restored"]),))
        db.execute("INSERT INTO graded VALUES ('a1', 'bob', 'f2', 'memory', 'used > 300 MiB', '[]', 2.0, 0)")
        db.execute("INSERT INTO graded VALUES ('a1', 'cy', 'f3', 'ok', '', '[]', 2.0, 0)")
    store = ProgressStore(tmp_path)
    records = {record.student_id: record for record in store.records("a1")}
    assert [record.flags for record in records.values()] == [[], [], []]
    assert record_flags(records["ann"]) == [Flag("tamper", "a1.ipynb: locked cell 'test_x' edited; original restored")]
    assert record_flags(records["bob"]) == [Flag("limit", "memory: used > 300 MiB")]
    assert record_flags(records["cy"]) == []
    # The migrated table takes new rows with flags; opening it again changes nothing.
    store.mark_done(GradedRecord("a1", "cy", "f4", "ok", flags=[Flag("runtime", "refused: socket")]))
    assert {r.student_id: r.flags for r in ProgressStore(tmp_path).records("a1")}["cy"] == [Flag("runtime", "refused: socket")]


def test_a_limit_flag_is_not_added_twice(tmp_path):
    record = GradedRecord("a1", "bob", "f", "timeout", "cell 3 ran past 30 s", flags=[Flag("limit", "timeout: cell 3")])
    assert record_flags(record) == [Flag("limit", "timeout: cell 3")]


def test_the_fingerprint_never_follows_a_link_and_sees_it_change(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "a.ipynb").write_text("{}")
    (tmp_path / "one").write_text("1")
    (tmp_path / "two").write_text("1")
    plain = fingerprint(tmp_path / "sub")
    os.symlink(tmp_path / "one", tmp_path / "sub" / "link")
    linked_one = fingerprint(tmp_path / "sub")
    os.unlink(tmp_path / "sub" / "link")
    os.symlink(tmp_path / "two", tmp_path / "sub" / "link")
    assert len({plain, linked_one, fingerprint(tmp_path / "sub")}) == 3  # same content, other target
    os.mkfifo(tmp_path / "sub" / "pipe")  # never opened: this would block
    assert fingerprint(tmp_path / "sub")


def test_the_fingerprint_of_regular_files_is_the_one_older_runs_recorded(tmp_path):
    """So a run after the upgrade does not regrade every submission."""
    import hashlib

    (tmp_path / "data" / "deep").mkdir(parents=True)
    for name in ["a.ipynb", "a.txt", "data/b.csv", "data/deep/c.bin", "data.txt"]:
        (tmp_path / name).write_bytes(name.encode() * 3)
    old = hashlib.sha256()
    for path in sorted(p for p in tmp_path.rglob("*") if p.is_file()):  # the previous implementation
        old.update(str(path.relative_to(tmp_path)).encode() + b"\0")
        old.update(hashlib.sha256(path.read_bytes()).digest())
    assert fingerprint(tmp_path) == old.hexdigest()
