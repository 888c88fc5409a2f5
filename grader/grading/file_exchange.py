"""nbgrader's file exchange, copying regular files only.

nbgrader's own ``collect`` copies a submission out of the exchange's world-writable ``inbound/``
with ``shutil.copytree``, which follows symlinks: a student who leaves a link to ``/etc/shadow``
or to ``gradebook.db`` there has the instructor (or root) copy that file into ``submitted/``, where
autograde hands it to the student's code. :class:`Collect` copies with
:func:`grader.regular_files.copy_regular_tree` instead: symlinks, hard links, devices, fifos and
sockets are never followed or copied, each skipped entry is logged as a warning and kept as a
``files`` flag for the student (:meth:`grader.grading.resume.ProgressStore.collect_flags`), which
``grader collect`` prints. :class:`Submit` refuses, on the student's side, a folder holding such
entries, naming them.

``grader collect`` uses :class:`Collect` whenever the course uses nbgrader's file exchange
(:func:`grader.grading.collect.collect_submissions`); a course's ``nbgrader_config.py`` may name them too::

    c.ExchangeFactory.collect = 'grader.grading.file_exchange.Collect'
    c.ExchangeFactory.submit = 'grader.grading.file_exchange.Submit'
"""

from __future__ import annotations

import os
import pwd
from pathlib import Path

from nbgrader.exchange.default.collect import ExchangeCollect
from nbgrader.exchange.default.submit import ExchangeSubmit
from nbgrader.utils import ignore_patterns

from grader.flags import Flag
from grader.regular_files import Entry, copy_regular_tree, non_regular_entries, walk_regular


def _ignore(exchange):
    coursedir = exchange.coursedir
    return ignore_patterns(exclude=coursedir.ignore, include=coursedir.include,
                           max_file_size=coursedir.max_file_size, log=exchange.log)


# The hub's secure one-machine mode runs each student as this account (grader.hub.spawn.isolation,
# which the grading layer does not import).
STUDENT_ACCOUNT_PREFIX = "jupyter-"


def _regular_size(folder: str, ignore) -> int:
    return sum(item.stat.st_size for item in walk_regular(Path(folder), ignore=ignore) if isinstance(item, Entry))


def _check_size(exchange, src: str, ignore) -> None:
    """nbgrader's limit on a submission's size (``max_dir_size``, in kB), over regular files only."""
    size, limit = _regular_size(src, ignore), 1000 * exchange.coursedir.max_dir_size
    if size > limit:
        exchange.log.error("Directory size is too big")
        raise RuntimeError(f"Directory size is too big. Size is {size}, maximum size is {limit}")


def _owner_flag(inbound: str, src: str, student_id: str) -> Flag | None:
    """A flag when the submission's folder is owned by an account that is not the student's.

    nbgrader's own check (``check_owner``) wants the owner's name to be the student id; here a
    student's files belong to ``jupyter-<id>`` (secure mode) or, where every server runs as the
    hub's one user (demo mode), to the same user as the exchange itself, which proves nothing and
    is not reported: nbgrader warned "cheating attempt?" for every submission there.
    """
    owner_uid = os.lstat(src).st_uid
    if owner_uid == os.lstat(inbound).st_uid:
        return None
    try:
        owner = pwd.getpwuid(owner_uid).pw_name
    except KeyError:
        owner = f"uid {owner_uid}"
    if owner in (student_id, STUDENT_ACCOUNT_PREFIX + student_id):
        return None
    return Flag("files", f"submitted as {student_id} but the folder belongs to the account {owner}")


class Collect(ExchangeCollect):
    """nbgrader's file-exchange collect; the copy follows nothing and reports what it skipped."""

    #: {student id: files flags} of this run's collected submissions (empty list: nothing skipped).
    skipped: dict[str, list[Flag]]

    def init_src(self):
        super().init_src()
        self.skipped = {}
        self.check_owner = False  # replaced by _owner_flag, which knows this platform's accounts

    def do_copy(self, src, dest, log=None):
        ignore = _ignore(self)
        _check_size(self, src, ignore)
        if os.path.lexists(dest):
            raise FileExistsError(dest)
        student_id = self._path_to_record(src)["username"]  # as nbgrader's collect names it
        owner = _owner_flag(self.inbound_path, src, student_id)
        flags = copy_regular_tree(Path(src), Path(dest), ignore=ignore) + ([owner] if owner else [])
        for flag in flags:
            self.log.warning("%s: %s (in %s)", student_id, flag.reason, src)
        self.skipped[student_id] = flags
        self._record(student_id, flags)
        if self.coursedir.groupshared:
            for dirname, _, filenames in os.walk(dest):
                os.chmod(dirname, os.stat(dirname).st_mode | 0o2770)
                for filename in filenames:
                    path = os.path.join(dirname, filename)
                    os.chmod(path, os.stat(path).st_mode | 0o660)

    def _record(self, student_id: str, flags: list[Flag]) -> None:
        from grader.grading.resume import ProgressStore  # the course's store, next to its gradebook

        ProgressStore(Path(self.coursedir.root)).set_collect_flags(self.coursedir.assignment_id, student_id, flags)


class Submit(ExchangeSubmit):
    """nbgrader's file-exchange submit, refusing a folder that holds anything but regular files."""

    def copy_files(self):
        refused = non_regular_entries(Path(self.src_path), ignore=_ignore(self))
        if refused:
            self.fail("Submissions hold regular files only; remove or replace these and submit again:\n"
                      + "\n".join(f"  {flag.reason}" for flag in refused))
        super().copy_files()

    def do_copy(self, src, dest, log=None):
        ignore = _ignore(self)
        _check_size(self, src, ignore)
        for flag in copy_regular_tree(Path(src), Path(dest), ignore=ignore):  # changed since the check
            self.fail(f"Submissions hold regular files only: {flag.reason}")
