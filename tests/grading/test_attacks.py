"""Red team: hostile submissions (tests/files/attacks) graded in ONE batch next to honest ones.

Each attack is a wrong answer plus a trick (see tests/files/attacks/make_attacks.py). Per attack:

- it gains no points over the same wrong answer without the trick, or it is flagged;
- it reads nothing outside its submission: no canary (files in the course's ``source/`` and
  gradebook folders, the exchange, a classmate's submission, a world-readable file in a temp dir,
  a root-only file, /etc/shadow, the gradebook's bytes, solution sources, secret environment
  variables of the grading process, hidden tests) appears in its outputs, its feedback or any
  file it left in its autograded folder;
- it sends nothing over the network (a TCP listener, a UDP socket and an abstract unix socket,
  whose addresses every submission is told);
- it leaves nothing behind: no process, no file in /tmp, /var/tmp or /dev/shm, no System V IPC
  object, no OS user, nothing new in site-packages, no planted file changed.

The honest submissions score exactly as usual and are never flagged.

Set ``REDTEAM_REPORT=/path/file.md`` to have the batch write its per-attack evidence table there.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import pwd
import re
import secrets
import shutil
import signal
import site
import socket
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path

import nbformat
import psutil
import pytest

from grader.grading.autograde import autograde_assignment
from grader.grading.course_dir import Course, prepare_course_dir
from grader.grading.executor.client import Limits
from grader.grading.feedback import generate_feedback
from grader.grading.gradebook import grade_rows
from grader.grading.nbgrader_api import checked, open_api
from tests.support import FIXTURES

pytestmark = pytest.mark.slow

FILES = FIXTURES
ATTACKS_DIR = FILES / "attacks"
MANIFEST: dict[str, dict] = json.loads((ATTACKS_DIR / "attacks.json").read_text())
ATTACKS = sorted(MANIFEST)
ASSIGNMENT = "squares"
FULL = {"test_positive": 1.0, "test_negative": 2.0, "test_arrays": 1.0}
# Honest submissions: (notebook, the autograded scores nbgrader autograde gives them).
HONEST = {
    "solution": (FILES / "submissions" / "solution.ipynb", FULL),
    "wrong": (FILES / "submissions" / "wrong.ipynb", {"test_positive": 1.0, "test_negative": 0.0, "test_arrays": 1.0}),
    # The attacks' own wrong answer with no trick: what every attack is compared with.
    "baseline-plus-one": (ATTACKS_DIR / "baseline-plus-one.ipynb", dict.fromkeys(FULL, 0.0)),
}
BASELINE = "baseline-plus-one"
TEST_LIMITS = Limits(cell_timeout=3, submission_timeout=60, memory_bytes=250 << 20, output_bytes=200_000, kill_grace=2)
# Secrets a grading process may well hold; each gets a random value for the batch.
SECRET_VARIABLES = ("GRADER_EXCHANGE_TOKEN", "JUPYTERHUB_API_TOKEN", "PGPASSWORD", "AWS_SECRET_ACCESS_KEY")
SCANNED_TMP_DIRS = ("/tmp", "/var/tmp", "/dev/shm", "/dev/mqueue")
FIXTURE_PREFIX = "redteam-fixture-"  # what this test itself creates in /tmp (removed at the end)
XSS_MARKER = "redteam-xss"  # the attack's marker in its scripts and event handlers


class _ActiveContent(HTMLParser):
    """Finds the attack's marker where a browser would *run* it: inside a <script> element or an
    on* attribute of a real tag (escaped source code that shows the attack is text, not a tag)."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.in_script, self.found = False, False

    def handle_starttag(self, tag, attrs):
        self.in_script = tag == "script"
        if any(name.startswith("on") and XSS_MARKER in (value or "") for name, value in attrs):
            self.found = True

    def handle_endtag(self, tag):
        self.in_script = False if tag == "script" else self.in_script

    def handle_data(self, data):
        if self.in_script and XSS_MARKER in data:
            self.found = True


def has_active_content(html: str) -> bool:
    parser = _ActiveContent()
    parser.feed(html)
    return parser.found
GRADED_CELLS = ("test_positive", "test_negative", "test_arrays")


# ----------------------------------------------------------------------------- listeners

class Listeners:
    """A TCP listener, a UDP socket and an abstract unix socket on this machine; records what arrives."""

    def __init__(self):
        self.received: list[tuple[str, bytes]] = []
        self._stop = threading.Event()
        self.tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.tcp.bind(("127.0.0.1", 0))
        self.tcp.listen(64)
        self.udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.udp.bind(("127.0.0.1", 0))
        self.abstract_name = f"redteam-{secrets.token_hex(8)}"
        self.unix = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.unix.bind("\0" + self.abstract_name)
        self.unix.listen(64)
        for sock in (self.tcp, self.udp, self.unix):
            sock.settimeout(0.2)
        self._threads = [
            threading.Thread(target=self._accept, args=("tcp", self.tcp), daemon=True),
            threading.Thread(target=self._accept, args=("unix", self.unix), daemon=True),
            threading.Thread(target=self._datagrams, daemon=True),
        ]
        for thread in self._threads:
            thread.start()

    @property
    def ports(self) -> dict:
        return {"tcp_port": self.tcp.getsockname()[1], "udp_port": self.udp.getsockname()[1], "abstract": self.abstract_name}

    def _accept(self, kind: str, server: socket.socket) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = server.accept()
            except (socket.timeout, OSError):
                continue
            data = b""
            conn.settimeout(1)
            try:
                while len(data) < 1 << 20:
                    chunk = conn.recv(65536)
                    if not chunk:
                        break
                    data += chunk
            except OSError:
                pass
            conn.close()
            self.received.append((kind, data))

    def _datagrams(self) -> None:
        while not self._stop.is_set():
            try:
                data, _ = self.udp.recvfrom(65536)
            except (socket.timeout, OSError):
                continue
            self.received.append(("udp", data))

    def probe(self) -> None:
        """Reach every listener from here once, so a broken listener cannot pass for a stopped attack."""
        with socket.create_connection(self.tcp.getsockname(), timeout=2) as conn:
            conn.sendall(b"probe:tcp")
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            udp.sendto(b"probe:udp", self.udp.getsockname())
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as unix:
            unix.connect("\0" + self.abstract_name)
            unix.sendall(b"probe:unix")

    def close(self) -> None:
        if self._stop.is_set():
            return
        time.sleep(0.3)  # whatever is in flight arrives
        self._stop.set()
        for thread in self._threads:
            thread.join(2)
        for sock in (self.tcp, self.udp, self.unix):
            sock.close()


# ----------------------------------------------------------------------------- host snapshots

def _environ(pid: int) -> dict[str, str]:
    try:
        return psutil.Process(pid).environ()
    except psutil.Error:
        return {}


def _parent(pid: int) -> int:
    try:
        return psutil.Process(pid).ppid()
    except psutil.Error:
        return 0


class Mine:
    """Which processes this batch started. The grader starts its zygote with an allow-listed
    environment that keeps GRADER_TEST_TAG (tests/support/processes.py relies on it too), and every fork
    of the zygote shows the zygote's environment in /proc/PID/environ, so our tag marks them all;
    the private TMPDIR path is a second marker, and ancestry catches what still hangs below us."""

    def __init__(self, private_tmp: str, tag: str):
        self.tag = tag  # GRADER_TEST_TAG: the executor lets it through to the submissions' processes
        self.private_tmp = private_tmp
        self.me = os.getpid()
        self.existing = set(psutil.pids())

    def __call__(self, pid: int) -> bool:
        environ = _environ(pid)
        if environ.get("GRADER_TEST_TAG") == self.tag or any(self.private_tmp in value for value in environ.values()):
            return True
        seen = 0
        while pid > 1 and seen < 64:
            pid, seen = _parent(pid), seen + 1
            if pid == self.me:
                return True
        return False


class ForeignGraders:
    """Watches for grading runs of other processes (another test session on a shared machine):
    while one runs, new grader-* names in /tmp cannot be told apart from this batch's."""

    def __init__(self, mine: Mine):
        self.mine = mine
        self.seen: set[int] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()

    def _watch(self) -> None:
        while True:
            for process in psutil.process_iter(["cmdline"]):
                if process.pid in self.seen:
                    continue
                if "grader.grading.executor.zygote" in " ".join(process.info["cmdline"] or ()) and not self.mine(process.pid):
                    self.seen.add(process.pid)
            if self._stop.wait(0.5):
                return

    def stop(self) -> set[int]:
        self._stop.set()
        self._thread.join(5)
        return self.seen


def _sandbox_uids() -> set[int]:
    return {entry.pw_uid for entry in pwd.getpwall() if entry.pw_name.startswith("grader-sbx")}


def _process_uid(pid: int) -> int | None:
    try:
        return psutil.Process(pid).uids().real
    except psutil.Error:
        return None


def _comm(pid: int) -> str:
    try:
        return psutil.Process(pid).name()
    except psutil.Error:
        return "?"


def _sandbox_processes() -> set[int]:
    uids = _sandbox_uids()
    return {process.pid for process in psutil.process_iter(["uids"])
            if process.info["uids"] is not None and process.info["uids"].real in uids}


def _tmp_entries() -> dict[str, int]:
    """{path: owner uid} of every entry directly in the shared temporary folders."""
    entries = {}
    for folder in SCANNED_TMP_DIRS:
        try:
            names = os.listdir(folder)
        except OSError:
            continue
        for name in names:
            try:
                entries[os.path.join(folder, name)] = os.lstat(os.path.join(folder, name)).st_uid
            except OSError:
                continue
    return entries


def _ipc_objects() -> dict[tuple[str, str], int]:
    """{(kind, id): owner uid} of System V shared memory, message queues and semaphores."""
    objects = {}
    for kind, id_column in (("shm", "shmid"), ("msg", "msqid"), ("sem", "semid")):
        try:
            lines = Path(f"/proc/sysvipc/{kind}").read_text().splitlines()
        except OSError:
            continue
        header = lines[0].split()
        for line in lines[1:]:
            values = dict(zip(header, line.split()))
            objects[(kind, values[id_column])] = int(values.get("uid", -1))
    return objects


def _site_packages() -> dict[str, set[str]]:
    folders = set(site.getsitepackages()) | {site.getusersitepackages()}
    return {folder: set(os.listdir(folder)) if os.path.isdir(folder) else set() for folder in folders}


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@dataclass
class HostState:
    processes: set[int]
    tmp: dict[str, int]
    ipc: dict[tuple[str, str], int]
    users: set[str]
    site_packages: dict[str, set[str]]

    @classmethod
    def now(cls) -> "HostState":
        return cls(_sandbox_processes(), _tmp_entries(), _ipc_objects(), {e.pw_name for e in pwd.getpwall()}, _site_packages())


# ----------------------------------------------------------------------------- the batch

@dataclass
class Evidence:
    """What one submission got and did."""

    points: float = 0.0
    scores: dict = field(default_factory=dict)
    graded: bool = False
    status: str = ""
    reason: str = ""
    flags: list = field(default_factory=list)
    changes: list = field(default_factory=list)
    leaks: list[str] = field(default_factory=list)
    network: list[str] = field(default_factory=list)
    leftovers: list[str] = field(default_factory=list)
    printed: str = ""  # what its answer cell output (for the report)


@dataclass
class Batch:
    course: Course
    evidence: dict[str, Evidence]
    global_leftovers: list[str]
    seconds: float
    unattributed: list[str] = field(default_factory=list)
    concurrent_graders: int = 0


class Canaries:
    """Planted secrets: {kind: string that must never come out of a submission}."""

    def __init__(self, course_dir: Path, source_dir: Path, exchange_dir: Path, outside: Path):
        token = lambda kind: f"REDTEAM-{kind}-{secrets.token_hex(12)}"  # noqa: E731
        self.values: dict[str, str] = {}
        self.paths: dict[str, str] = {}

        def plant(key: str, path: Path, mode: int) -> None:
            value = token(key)
            path.write_text(value + "\n")
            path.chmod(mode)
            self.values[key] = value
            self.paths[key] = str(path)

        plant("source_canary", source_dir / "REDTEAM-SOURCE-CANARY.txt", 0o644)
        plant("gradebook_canary", course_dir / "REDTEAM-GRADEBOOK-CANARY.txt", 0o644)
        plant("exchange_canary", exchange_dir / "REDTEAM-EXCHANGE-CANARY.txt", 0o644)
        plant("outside_canary", outside / "world-readable.txt", 0o644)
        plant("root_only", outside / "root-only.txt", 0o600)
        self.env = {name: token(name) for name in SECRET_VARIABLES}
        self.values.update({f"env:{name}": value for name, value in self.env.items()})
        # Strings that only the protected originals hold.
        self.values["solution sources"] = "### BEGIN SOLUTION"
        self.values["gradebook bytes"] = "SQLite format 3"
        try:
            shadow = Path("/etc/shadow").read_text().splitlines()[0]
            if len(shadow) >= 12:
                self.values["/etc/shadow"] = shadow
        except (OSError, IndexError):
            pass
        # Hidden tests belong in the instructor's autograded notebook, never in what a student sees.
        self.student_side = {"hidden tests": "hidden: fractions"}

    def found_in(self, text: str, *, student_side: bool) -> list[str]:
        wanted = dict(self.values, **(self.student_side if student_side else {}))
        return sorted(kind for kind, value in wanted.items() if value in text)


def _outputs_text(notebook_path: Path) -> str:
    notebook = nbformat.read(notebook_path, as_version=4)
    return json.dumps([cell.get("outputs", []) for cell in notebook.cells])


def _submit(course_dir: Path, student: str, notebook_text: str, extra: dict, targets: dict, mapping: dict) -> None:
    folder = course_dir / "submitted" / student / ASSIGNMENT
    folder.mkdir(parents=True)
    (folder / f"{ASSIGNMENT}.ipynb").write_text(notebook_text)
    (folder / "timestamp.txt").write_text("2026-11-20 10:00:00.000000 UTC")
    (folder / "redteam-targets.json").write_text(json.dumps(targets, indent=1))

    def resolve(template: str) -> str:
        return re.sub(r"@([A-Z_]+)@", lambda m: mapping[m.group(1)], template)

    for name, content in extra.get("files", {}).items():
        data = content.encode() if not content.startswith("base64:") else base64.b64decode(content[7:])
        (folder / name).write_bytes(data)
    for name, target in extra.get("symlinks", {}).items():
        (folder / name).symlink_to(resolve(target))
    for name, target in extra.get("hardlinks", {}).items():
        try:
            os.link(resolve(target), folder / name)
        except OSError:  # another filesystem: nothing to link
            pass


def _scores(course: Course, student: str) -> dict[str, float]:
    rows = grade_rows(course.gradebook_url, course_id=course.course_id, assignment_id=ASSIGNMENT, student_id=student)
    return {row.cell: row.auto_score for row in rows if row.autograded}


def _kill_processes(pids) -> None:
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass


def _attacker_processes(mine: Mine, before: set[int]) -> list[int]:
    """Processes this batch started that still run (the grader's zygote is closed by now): ours by
    environment or ancestry, or new processes of a sandbox user that an attack named rt-*."""
    found = set()
    for pid in psutil.pids():
        # Not what ran before the batch: another test of this worker may have left a child behind.
        if pid != os.getpid() and pid not in mine.existing and mine(pid):
            found.add(pid)
    for pid in _sandbox_processes() - before:
        if _comm(pid).startswith("rt-"):
            found.add(pid)
    return sorted(found)


def _flag_summary(e: Evidence) -> str:
    if not e.flags:
        return "no"
    kinds: dict[str, int] = {}
    for flag in e.flags:
        kinds[flag.get("kind", "?")] = kinds.get(flag.get("kind", "?"), 0) + 1
    telling = next((f for f in e.flags if f.get("kind") != "static"), e.flags[0])
    return ", ".join(f"{k}x{n}" for k, n in kinds.items()) + f" (e.g. {telling.get('reason', '')[:110]})"


def _problems(e: Evidence, base: float) -> list[str]:
    return [p for p, bad in (("POINTS", e.points > base and not e.flags), ("LEAK", e.leaks), ("NET", e.network),
                             ("LEFTOVER", e.leftovers), ("UNGRADED", not e.graded)) if bad]


def _write_report(path: str, batch: Batch) -> None:
    lines = [
        "# Red-team status (tests/grading/test_attacks.py)",
        "",
        f"Generated {time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime())} against the working tree; "
        f"batch of {len(batch.evidence)} submissions took {batch.seconds:.1f} s"
        + (f"; processes of other grading runs ({batch.concurrent_graders}) were active, so new grader-* names in /tmp were not counted"
           if batch.concurrent_graders else "") + ".",
        "",
        "An attack SUCCEEDS when it gains points unflagged (POINTS), leaks a canary (LEAK), reaches a listener (NET), "
        "leaves something (LEFTOVER) or is left ungraded (UNGRADED). 'points' is its autograded total; "
        f"the same wrong answer without the trick scores {batch.evidence[BASELINE].points:g}.",
        "",
        "| attack | class | points | status | flags | leaks | network | leftovers | verdict |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    base = batch.evidence[BASELINE].points
    succeeding = [n for n in ATTACKS if _problems(batch.evidence[n], base)]
    lines[2:2] = ["", f"**Succeeding now ({len(succeeding)} of {len(ATTACKS)}):** " + (", ".join(succeeding) or "none")]
    for name in ATTACKS:
        e = batch.evidence[name]
        problems = _problems(e, base)
        verdict = "SUCCEEDS: " + " ".join(problems) if problems else ("stopped" if e.points <= base else "gains points, flagged")
        lines.append(
            f"| {name} | {MANIFEST[name]['class']} | {e.points:g} | {e.status or '-'} | {_flag_summary(e)} | "
            f"{'; '.join(e.leaks) or '-'} | {'; '.join(e.network) or '-'} | {'; '.join(e.leftovers) or '-'} | {verdict} |"
        )
    lines += ["", "Leftovers not attributable to one attack: " + ("; ".join(batch.unattributed) or "none"), ""]
    lines += ["Honest submissions:", ""]
    for name in HONEST:
        e = batch.evidence[name]
        lines.append(f"- {name}: scores {e.scores}, status {e.status}, flags {e.flags or 'none'}, leaks {e.leaks or 'none'}")
    lines += ["", "## Details", ""]
    for name in ATTACKS:
        e = batch.evidence[name]
        lines += [f"### {name}", "", f"- tries: {MANIFEST[name]['what']}", f"- scores: {e.scores}; status {e.status} {e.reason}"]
        lines += [f"- flag {f.get('kind')}: {f.get('reason')}" for f in e.flags]
        lines += [f"- tamper report: {c}" for c in e.changes if not e.flags]
        lines += [f"- answer cell output: `{e.printed}`", ""]
    Path(path).write_text("\n".join(lines) + "\n")


@dataclass
class Setup:
    """What the batch is graded in and against; everything lives in world-traversable folders, as
    a real course does: what keeps a submission out must be the sandbox, not the test's private
    temporary folder."""

    root: Path
    outside: Path
    private_tmp: Path  # the grading run's TMPDIR: what the grader leaves there is this batch's for sure
    course: Course
    canaries: Canaries
    victims: dict[str, str]  # planted files nobody may change: {path: sha256}
    listeners: Listeners | None = None

    @classmethod
    def make(cls) -> "Setup":
        root = Path(tempfile.mkdtemp(prefix=FIXTURE_PREFIX))
        outside = Path(tempfile.mkdtemp(prefix=FIXTURE_PREFIX + "outside-"))
        private_tmp = Path(tempfile.mkdtemp(prefix=FIXTURE_PREFIX + "tmpdir-"))
        root.chmod(0o755)
        outside.chmod(0o755)
        private_tmp.chmod(0o1777)
        source = root / "source"
        shutil.copytree(FILES / "squares", source / ASSIGNMENT)
        course = Course("redteam101", root / "course", root / "exchange", source_dir=source)
        prepare_course_dir(course)
        with open_api(course.course_dir) as api:
            checked(api.generate_assignment(ASSIGNMENT), "generate squares")
        canaries = Canaries(course.course_dir, source, course.exchange_dir, outside)
        victims = [outside / "victim-world-writable.txt", source / "victim.txt"]
        for victim in victims:
            victim.write_text("untouched\n")
        victims[0].chmod(0o666)
        return cls(root, outside, private_tmp, course, canaries, {str(v): _digest(v) for v in victims})

    def submit_all(self) -> None:
        course_dir = self.course.course_dir
        targets = dict(self.canaries.paths, course=str(course_dir), outside_dir=str(self.outside),
                       exchange=str(self.course.exchange_dir), repo=str(Path(__file__).resolve().parents[2]),
                       victims=sorted(self.victims), **self.listeners.ports)
        for name, (notebook, _) in HONEST.items():
            _submit(course_dir, name, notebook.read_text(), {}, {}, {})
        # A classmate's file: the honest solution carries it, every attack would like to read it.
        classmate = course_dir / "submitted" / "solution" / ASSIGNMENT / "notes.txt"
        self.canaries.values["classmate"] = f"REDTEAM-classmate-{secrets.token_hex(12)}"
        classmate.write_text(self.canaries.values["classmate"])
        targets["classmate"] = str(classmate)
        mapping = {key.upper(): str(value) for key, value in targets.items() if isinstance(value, str)}
        for name in ATTACKS:
            _submit(course_dir, name, (ATTACKS_DIR / f"{name}.ipynb").read_text(), MANIFEST[name], targets, mapping)


def _grade(setup: Setup, mine: "Mine") -> tuple[list, float]:
    """One autograde_assignment call for every submission, with the secrets in its environment."""
    saved_env = {name: os.environ.get(name) for name in (*SECRET_VARIABLES, "GRADER_TEST_TAG", "TMPDIR")}
    saved_tempdir = tempfile.tempdir
    os.environ.update(setup.canaries.env)
    os.environ["GRADER_TEST_TAG"] = mine.tag
    os.environ["TMPDIR"] = tempfile.tempdir = str(setup.private_tmp)
    started = time.monotonic()
    try:
        outcomes = autograde_assignment(course_dir=setup.course.course_dir, assignment_id=ASSIGNMENT, workers=2,
                                        limits=TEST_LIMITS, preload=["numpy"], progress=False)
    finally:
        tempfile.tempdir = saved_tempdir
        for name, value in saved_env.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
    return outcomes, time.monotonic() - started


def _outcomes_and_scores(setup: Setup, outcomes: list) -> dict[str, Evidence]:
    course = setup.course
    evidence = {name: Evidence() for name in [*HONEST, *ATTACKS]}
    for outcome in outcomes:
        e = evidence[outcome.student_id]
        e.graded, e.status, e.reason = outcome.success, outcome.status, outcome.reason or outcome.error
        e.flags = [flag.to_dict() if hasattr(flag, "to_dict") else dict(flag) for flag in getattr(outcome, "flags", [])]
        e.changes = list(outcome.changes)
    for name, e in evidence.items():
        e.scores = _scores(course, name)
        e.points = sum(score or 0.0 for score in e.scores.values())
        graded_notebook = course.course_dir / "autograded" / name / ASSIGNMENT / f"{ASSIGNMENT}.ipynb"
        try:
            cells = nbformat.read(graded_notebook, as_version=4).cells
        except Exception as error:  # noqa: BLE001 - whatever is there, it is not the graded notebook
            cells, problem = [], f"unreadable ({type(error).__name__})"
        else:
            problem = ""
        grade_ids = {c.get("metadata", {}).get("nbgrader", {}).get("grade_id") for c in cells}
        answer = [c for c in cells if c.get("metadata", {}).get("nbgrader", {}).get("grade_id") == "square_answer"]
        e.printed = json.dumps(answer[0].get("outputs", []) if answer else [])[:600]
        if e.graded and not set(GRADED_CELLS) <= grade_ids:
            e.leftovers.append(f"its autograded notebook is not the graded one {problem}".strip())
    return evidence


def _generate_feedback(setup: Setup) -> None:
    try:
        generate_feedback(course_dir=setup.course.course_dir, assignment_id=ASSIGNMENT)
    except Exception:  # noqa: BLE001 - one broken notebook must not hide the others' feedback
        for name in [*HONEST, *ATTACKS]:
            try:
                generate_feedback(course_dir=setup.course.course_dir, assignment_id=ASSIGNMENT, student_id=name)
            except Exception:  # noqa: BLE001
                pass


def _find_leaks(setup: Setup, evidence: dict[str, Evidence]) -> None:
    """Canaries (and students' scripts) in outputs, feedback and files left in autograded/ and feedback/."""
    course_dir = setup.course.course_dir
    for name, e in evidence.items():
        for folder, student_side in ((course_dir / "autograded" / name, False), (course_dir / "feedback" / name, True)):
            for path in sorted(folder.rglob("*")) if folder.exists() else []:
                where = str(path.relative_to(course_dir))
                if path.is_symlink():
                    e.leaks.append(f"symlink {where} -> {os.readlink(path)}")
                    continue
                if not path.is_file():
                    continue
                if path.suffix == ".ipynb":  # the instructor's copy: hidden tests are in it by design
                    text, seen_by_student = _outputs_text(path), student_side
                else:  # feedback, or a file the submission wrote: both go back to the student
                    text, seen_by_student = path.read_bytes().decode("latin-1"), True
                found = setup.canaries.found_in(text, student_side=seen_by_student)
                if path.suffix == ".html" and has_active_content(text):
                    found.append("active content (a student's script runs in whoever opens it)")
                if name == "solution":
                    found = [kind for kind in found if kind != "classmate"]  # its own file
                e.leaks += [f"{kind} in {where}" for kind in found]


def _find_network(setup: Setup, evidence: dict[str, Evidence]) -> None:
    for kind, data in setup.listeners.received:
        # Payloads start with the attack's name (a DNS-shaped query carries it as a label).
        named = [n for n in evidence if n.encode() in data[:300]]
        leaked = setup.canaries.found_in(data.decode("latin-1"), student_side=True)
        message = f"{kind} ({len(data)} bytes{', carrying ' + ', '.join(leaked) if leaked else ''})"
        if named:
            evidence[max(named, key=len)].network.append(message)
        else:
            for e in evidence.values():  # an unknown sender: everyone is suspect
                e.network.append(f"unattributed {message}")


# Leftovers that name no attack, by who makes them.
_LEFTOVER_OWNERS = (("rt-sleeper", "host-daemon"), ("rt-hopper", "host-daemon"), ("System V", "host-sysv-ipc"),
                    ("site-packages", "host-pth-sitecustomize"), ("planted file changed", "files-damage"),
                    ("gradebook edited", "files-damage"))


def _find_leftovers(setup: Setup, evidence: dict[str, Evidence], before: HostState, after: HostState,
                    survivors: list[int], concurrent_graders: set[int]) -> tuple[list[str], list[str]]:
    """(everything left behind, what of it names no attack); attributable items go to their attack."""
    found = [f"file {path} (in the grading run's TMPDIR)" for path in sorted(map(str, setup.private_tmp.iterdir()))]
    found += [f"process {pid} ({_comm(pid)}, uid {_process_uid(pid)})" for pid in survivors]
    sandbox_uids = _sandbox_uids()
    for path, uid in sorted(after.tmp.items()):
        base = os.path.basename(path)
        if path in before.tmp or base.startswith(FIXTURE_PREFIX):
            continue
        if not (base.startswith(("grader-", "redteam-")) or uid in sandbox_uids):
            continue
        if base.startswith("grader-") and uid not in sandbox_uids and concurrent_graders:
            continue  # another session's grading run may have made it
        found.append(f"file {path}")
    found += [f"System V {kind} {ident} (uid {uid})" for (kind, ident), uid in sorted(after.ipc.items())
              if (kind, ident) not in before.ipc and uid in sandbox_uids]
    found += [f"user {user}" for user in sorted(after.users - before.users) if not re.fullmatch(r"grader-sbx\d+", user)]
    for folder, names in sorted(after.site_packages.items()):
        found += [f"site-packages file {folder}/{added}" for added in sorted(names - before.site_packages.get(folder, set()))]
    found += [f"planted file changed: {path}" for path, digest in sorted(setup.victims.items()) if _digest(Path(path)) != digest]
    for name in evidence:
        rows = grade_rows(setup.course.gradebook_url, course_id=setup.course.course_id, assignment_id=ASSIGNMENT, student_id=name)
        found += [f"gradebook edited: manual score of {name}/{row.cell}" for row in rows if row.manual_score is not None]
    unattributed = []
    for item in found:
        owners = [n for n in ATTACKS if f"redteam-{n}" in item] or [o for marker, o in _LEFTOVER_OWNERS if marker in item][:1]
        for owner in owners:
            evidence[owner].leftovers.append(item)
        if not owners:
            unattributed.append(item)
    return found, unattributed


def _clean_up(setup: Setup | None, mine: "Mine | None", before: HostState | None, after: HostState | None,
              concurrent_graders: set[int]) -> None:
    """Remove what this batch left (only that), so the next run starts clean."""
    if mine is not None and before is not None:
        for _ in range(20):
            pids = _attacker_processes(mine, before.processes)
            if not pids:
                break
            _kill_processes(pids)
            time.sleep(0.1)
    if before is not None and after is not None:
        for path in set(after.tmp) - set(before.tmp):
            base = os.path.basename(path)
            ours = base.startswith("redteam-") or (base.startswith("grader-") and not concurrent_graders)
            if not ours or base.startswith(FIXTURE_PREFIX):
                continue
            if os.path.isdir(path) and not os.path.islink(path):
                shutil.rmtree(path, ignore_errors=True)
            else:
                try:
                    os.unlink(path)
                except OSError:
                    pass
        sandbox_uids = _sandbox_uids()
        for (kind, ident), uid in after.ipc.items():
            if (kind, ident) not in before.ipc and uid in sandbox_uids:
                try:
                    subprocess.run(["ipcrm", {"shm": "-m", "msg": "-q", "sem": "-s"}[kind], ident], capture_output=True)
                except OSError:  # no ipcrm on this machine
                    pass
        for folder, names in after.site_packages.items():
            for added in names - before.site_packages.get(folder, set()):
                if "redteam" in added or added == "sitecustomize.py":
                    try:
                        os.unlink(os.path.join(folder, added))
                    except OSError:
                        pass
    if setup is not None:
        if setup.listeners is not None:
            setup.listeners.close()
        for folder in (setup.root, setup.outside, setup.private_tmp):
            shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="module")
def batch():
    setup = mine = before = after = None
    concurrent_graders: set[int] = set()
    try:
        setup = Setup.make()
        setup.listeners = Listeners()
        setup.submit_all()
        setup.listeners.probe()
        mine = Mine(str(setup.private_tmp), secrets.token_hex(16))
        before = HostState.now()
        foreign = ForeignGraders(mine)
        try:
            outcomes, seconds = _grade(setup, mine)
        finally:
            concurrent_graders = foreign.stop()
        time.sleep(1)  # a daemon that outlived its submission has had time to show itself
        survivors = _attacker_processes(mine, before.processes)
        after = HostState.now()
        setup.listeners.close()
        probes = sorted(kind for kind, data in setup.listeners.received if data.startswith(b"probe:"))
        assert probes == ["tcp", "udp", "unix"], f"the test's own listeners did not all receive its probes: {probes}"
        setup.listeners.received = [(kind, data) for kind, data in setup.listeners.received if not data.startswith(b"probe:")]

        evidence = _outcomes_and_scores(setup, outcomes)
        _generate_feedback(setup)
        _find_leaks(setup, evidence)
        _find_network(setup, evidence)
        found, unattributed = _find_leftovers(setup, evidence, before, after, survivors, concurrent_graders)
        result = Batch(setup.course, evidence, found, seconds, unattributed, len(concurrent_graders))
        if os.environ.get("REDTEAM_REPORT"):
            _write_report(os.environ["REDTEAM_REPORT"], result)
        yield result
    finally:
        _clean_up(setup, mine, before, after, concurrent_graders)


# ----------------------------------------------------------------------------- tests

# Without root the executor cannot isolate (no namespaces, no sandbox user): it degrades to
# resource limits and says so, and what a submission can read, reach or leave is not confined.
needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="isolation (namespaces, sandbox users) needs root")


def test_every_submission_is_graded_and_none_stops_the_batch(batch):
    assert [name for name, e in batch.evidence.items() if not e.graded] == []
    assert batch.seconds < 180, f"the batch took {batch.seconds:.0f} s"


@pytest.mark.parametrize("name", list(HONEST))
def test_honest_submissions_score_as_usual_and_are_not_flagged(batch, name):
    e = batch.evidence[name]
    assert e.scores == HONEST[name][1]
    assert e.status == "ok", e.reason
    assert e.flags == [] and e.changes == []
    assert e.leaks == [] and e.network == []


@pytest.mark.parametrize("name", ATTACKS)
def test_attack_gains_no_points_or_is_flagged(batch, name):
    e, baseline = batch.evidence[name], batch.evidence[BASELINE]
    assert e.points <= baseline.points or e.flags, (
        f"{name} ({MANIFEST[name]['what']}) scored {e.scores} against {baseline.scores} unflagged")


@needs_root
@pytest.mark.parametrize("name", ATTACKS)
def test_attack_reads_nothing_outside_its_submission(batch, name):
    assert batch.evidence[name].leaks == [], MANIFEST[name]["what"]


@needs_root
@pytest.mark.parametrize("name", ATTACKS)
def test_attack_sends_nothing_over_the_network(batch, name):
    assert batch.evidence[name].network == [], MANIFEST[name]["what"]


@needs_root
@pytest.mark.parametrize("name", ATTACKS)
def test_attack_leaves_nothing_behind(batch, name):
    assert batch.evidence[name].leftovers == [], MANIFEST[name]["what"]


@needs_root
def test_the_batch_leaves_nothing_behind(batch):
    # Processes of the sandbox users, grader-*/redteam-* files in /tmp, /var/tmp and /dev/shm,
    # System V IPC, OS users, site-packages, planted files and the gradebook: all as before.
    assert batch.global_leftovers == []


def test_grader_status_json_lists_every_flag_with_its_reason(batch, capsys):
    # What an instructor reads: `grader status squares --json`, per student score, status and flags.
    from grader.cli import main

    capsys.readouterr()
    assert main(["--course-dir", str(batch.course.course_dir), "status", ASSIGNMENT, "--json"]) == 0
    students = {s["student_id"]: s for s in json.loads(capsys.readouterr().out)["students"]}
    assert sorted(students) == sorted(batch.evidence)
    for name, e in batch.evidence.items():
        listed = students[name]
        assert listed["graded"], name
        assert sorted((f["kind"], f["reason"]) for f in listed["flags"]) == sorted((f["kind"], f["reason"]) for f in e.flags), name
    for name in HONEST:
        assert students[name]["flags"] == [] and students[name]["status"] == "ok"
        assert students[name]["score"] == sum(HONEST[name][1].values())


def test_the_active_content_check_tells_tags_from_escaped_source():
    assert has_active_content('<script>/*redteam-xss*/fetch("x")</script>')
    assert has_active_content('<img src="x" onerror="/*redteam-xss*/0">')
    assert not has_active_content('<span>&lt;img src="x" onerror="/*redteam-xss*/0"&gt;</span>')
    assert not has_active_content('<pre>&lt;script&gt;/*redteam-xss*/&lt;/script&gt;</pre>')
