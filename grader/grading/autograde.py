"""Autograde: grade every submission of an assignment into nbgrader's gradebook, fast and safely.

nbgrader's own ``Autograde`` converter does all the bookkeeping (students, submissions, restoring
the original test cells, late penalties, saving grades), so the gradebook rows are exactly the
ones ``nbgrader autograde`` writes. Only its ``Execute`` step is replaced, by
:class:`ForkedExecute`, which runs the cells in a sandboxed fork of a pre-importing zygote
(:mod:`grader.grading.executor`) instead of a fresh kernel per submission.

At most ``workers`` submissions execute at once, each in its own sandbox slot. All gradebook work
happens under one lock, so the database only ever sees one writer; the lock is released while cells
execute, which is where the time goes. One more thread than there are slots keeps the next
submission's bookkeeping going while the slots are busy, so student code never waits for it. Each finished submission is recorded in :mod:`grader.grading.resume`, so a run killed half
way is resumed by running it again.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import queue
import shutil
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path

import nbformat
from nbgrader.converters import Autograde
from nbgrader.converters.base import NbGraderException
from nbgrader.coursedir import CourseDirectory
from nbgrader.preprocessors import Execute, NbGraderPreprocessor
from tqdm.auto import tqdm

from grader.flags import Flag
from grader.grading.executor.client import DEFAULT_PRELOAD, ExecutionRequest, Limits, claim_sandbox_slots
from grader.grading.executor.preload import assignment_preload
from grader.grading.integrity.policy import apply_flagged_policy, flagged_policy
from grader.grading.nbgrader_api import load_course_config
from grader.grading.nbgrader_speedups import faster_nbgrader
from grader.grading.resume import GradedRecord, ProgressStore, fingerprint, record_flags
from grader.grading.tamper import inspect_submission
from grader.regular_files import copy_regular_tree, read_regular_files

GRADEBOOK_LOCK = threading.Lock()
STAGING_DIRECTORY = os.path.join(".grader", "staging")
# The size of a submission's extra files (data, helper modules) that is shipped to the executor.
MAX_SUBMISSION_FILES_BYTES = 64 << 20
_job = threading.local()


@dataclass(frozen=True)
class AutogradeOutcome:
    student_id: str
    success: bool
    status: str = "ok"
    reason: str = ""
    error: str = ""
    changes: list[str] = field(default_factory=list)
    seconds: float = 0.0
    skipped: bool = False  # already graded with these exact files (resumed run)
    flags: list[Flag] = field(default_factory=list)  # what an instructor should check (grader.grading.integrity)
    zeroed: bool = False  # the course's flagged_policy set the score to 0 until reviewed


@dataclass
class _JobContext:
    backend: object
    slots: queue.Queue  # the sandbox slots of this run: one is taken only while cells execute
    limits: Limits
    policy: str = "keep"  # the course's c.Grader.flagged_policy
    flagged_before: frozenset = frozenset()  # students whose last graded submission had flags
    statuses: list = field(default_factory=list)
    flags: list[Flag] = field(default_factory=list)

    def previously_flagged(self, student_id: str) -> bool:
        return student_id in self.flagged_before


def _is_instructor_cell(cell) -> bool:
    """A test or locked cell: nbgrader restores its source from the release before it runs."""
    meta = cell.metadata.get("nbgrader", {})
    return bool(meta.get("locked") or (meta.get("grade") and not meta.get("solution")))


class ForkedExecute(NbGraderPreprocessor):
    """Drop-in for nbgrader's ``Execute``: same outputs, produced by the sandboxed executor."""

    def preprocess(self, nb, resources):
        context: _JobContext = _job.context
        _check_kernel(nb, resources)
        folder = Path(resources["metadata"]["path"])
        # A student may tag their own cells skip-execution, never the instructor's (nbgrader
        # restores a test cell's source and grade metadata, not its tags).
        runnable, skipped = [], []
        for cell in nb.cells:
            if cell.cell_type != "code" or not cell.source.strip():
                continue
            if "skip-execution" in cell.metadata.get("tags", []):
                if not _is_instructor_cell(cell):
                    continue
                skipped.append(cell.metadata.get("nbgrader", {}).get("grade_id", "?"))
            runnable.append(cell)
        context.flags += [Flag("tamper", f"instructor cell {grade_id!r} was tagged skip-execution; run anyway")
                          for grade_id in skipped]
        # Everything in the folder except notebooks (which hold the restored hidden tests);
        # regular files only, never following a link.
        files, file_flags = read_regular_files(folder, exclude_suffixes=(".ipynb",), max_total_bytes=MAX_SUBMISSION_FILES_BYTES)
        context.flags += file_flags
        request = ExecutionRequest(
            cells=[cell.source for cell in runnable],
            files=files,
            env={"NBGRADER_EXECUTION": "autograde", **_thread_settings()},
            trusted=[_is_instructor_cell(cell) for cell in runnable],
        )
        # Let other submissions use the gradebook while this one waits for a slot and runs.
        GRADEBOOK_LOCK.release()
        try:
            request.slot = context.slots.get()
            try:
                result = context.backend.execute(request, context.limits)
            finally:
                context.slots.put(request.slot)
        finally:
            GRADEBOOK_LOCK.acquire()
        for cell in nb.cells:
            if cell.cell_type == "code":
                cell.outputs, cell.execution_count = [], None
        timeout_error = _timeout_error_output(self.config)
        for cell, cell_result in zip(runnable, result.cells):
            outputs = list(cell_result.outputs)
            if cell_result.timed_out and timeout_error:
                # nbgrader adds this to a timed-out cell even when its code caught the interrupt.
                outputs.append(timeout_error)
            cell.outputs = [nbformat.from_dict(output) for output in outputs]
            cell.execution_count = cell_result.execution_count
        _sanitize(nb)
        # Files the notebook wrote stay next to it, as they do when nbgrader runs it in a kernel.
        _write_back(folder, result.files)
        context.statuses.append(result)
        context.flags += result.flags
        return nb, resources


@functools.lru_cache(maxsize=1)
def _installed_kernels() -> frozenset[str]:
    from jupyter_client.kernelspec import KernelSpecManager

    return frozenset(KernelSpecManager().find_kernel_specs())


def _check_kernel(nb, resources) -> None:
    """Refuse, as nbgrader's kernel start does, a notebook whose kernel does not exist here (the
    kernelspec comes from the instructor's source: OverwriteKernelspec restored it)."""
    name = nb.metadata.get("kernelspec", {}).get("name")
    # jupyter_client's KernelManager takes "python" for the interpreter's own kernel.
    if name and name != "python" and name not in _installed_kernels():
        from jupyter_client.kernelspec import NoSuchKernel

        raise NoSuchKernel(name)


_SANITIZER = None


def _sanitize(nb) -> None:
    """Take active content (scripts, event handlers, JavaScript outputs, SVG) out of what the
    student's code displayed and what they wrote in markdown: the instructor opens both in the
    formgrader and the student's feedback page, under the hub's origin."""
    global _SANITIZER
    if _SANITIZER is None:
        from nbconvert.preprocessors.sanitize import SanitizeHTML

        _SANITIZER = SanitizeHTML(strip=True)
        # Widget views are data for the installed widget manager, not markup: keep them.
        _SANITIZER.safe_output_keys = _SANITIZER.safe_output_keys | {
            "application/vnd.jupyter.widget-view+json", "application/vnd.jupyter.widget-state+json"}
        _SANITIZER.sanitize_html_tags = _remembered(_SANITIZER.sanitize_html_tags)
    for index, cell in enumerate(nb.cells):
        if cell.cell_type == "code":
            cell.outputs = _SANITIZER.sanitize_code_outputs(cell.outputs)
        elif cell.cell_type in ("markdown", "raw") and not _is_instructor_cell(cell):
            _SANITIZER.preprocess_cell(cell, {}, index)


def _remembered(sanitize, *, max_entries: int = 2048, max_length: int = 1 << 16):
    """``sanitize`` (a pure function of the markup) answered from memory for markup seen before.

    Most markdown a submission holds is the release's, the same in every submission, and bleach
    parses each piece with html5lib (~0.5 ms a cell). Long markup is not kept, and the memory is
    emptied when full: it stays small whatever students write."""
    seen: dict[str, str] = {}
    lock = threading.Lock()

    def sanitize_remembered(markup: str) -> str:
        if len(markup) > max_length:
            return sanitize(markup)
        with lock:
            if markup in seen:
                return seen[markup]
        clean = sanitize(markup)
        with lock:
            if len(seen) >= max_entries:
                seen.clear()
            seen[markup] = clean
        return clean

    return sanitize_remembered


def _thread_settings() -> dict[str, str]:
    """The thread-count variables of the grader's own environment (set per test worker, etc.)."""
    names = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")
    return {name: os.environ[name] for name in names if name in os.environ}


def _write_back(folder: Path, files: dict[str, bytes]) -> None:
    for relative, data in files.items():
        target = (folder / relative)
        if target.suffix == ".ipynb" or ".." in Path(relative).parts or Path(relative).is_absolute():
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        handle = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o644)
        with os.fdopen(handle, "wb") as out:
            out.write(data)


class _ThreadSafeAutograde(Autograde):
    """nbgrader's converter without its per-notebook ``setenv(NBGRADER_EXECUTION=...)``.

    nbgrader 0.9.6's ``setenv`` saves ``os.environ.get(value)`` instead of ``.get(key)`` and so
    always deletes the variable afterwards; with several threads one deletes it under another
    (KeyError). ``autograde_assignment`` sets the variable once for the whole run instead.
    """

    def convert_single_notebook(self, notebook_filename: str) -> None:
        self.log.info("Sanitizing %s", notebook_filename)
        self._sanitizing = True
        self._init_preprocessors()
        super(Autograde, self).convert_single_notebook(notebook_filename)
        notebook_filename = os.path.join(self.writer.build_directory, os.path.basename(notebook_filename))
        self.log.info("Autograding %s", notebook_filename)
        self._sanitizing = False
        self._init_preprocessors()
        try:
            super(Autograde, self).convert_single_notebook(notebook_filename)
        finally:
            self._sanitizing = True


def _with_forked_execute(preprocessors: list) -> list:
    return [ForkedExecute if preprocessor is Execute else preprocessor for preprocessor in preprocessors]


def _stage_submission(course_dir: Path, coursedir: CourseDirectory, assignment_id: str, student_id: str) -> tuple[list[str], list[Flag]]:
    """Copy a submission into the staging tree, repaired; return the tampering found, and flags for
    what was not copied (anything but regular files) and for what the static scan found."""
    submitted = Path(coursedir.format_path(coursedir.submitted_directory, student_id, assignment_id))
    staged = course_dir / STAGING_DIRECTORY / student_id / assignment_id
    if staged.exists():
        shutil.rmtree(staged)
    flags = copy_regular_tree(submitted, staged)
    release = Path(coursedir.format_path(coursedir.release_directory, ".", assignment_id))
    flags += _static_flags(staged, release)
    changes = []
    for release_notebook in sorted(release.glob("*.ipynb")):
        submitted_notebook = staged / release_notebook.name
        if not submitted_notebook.exists():
            changes.append(f"{release_notebook.name}: not submitted")
            continue
        inspection = inspect_submission(submitted_notebook, _read_release(release_notebook))
        nbformat.write(inspection.notebook, submitted_notebook)
        changes += inspection.changes
    return changes, flags


def _static_flags(staged: Path, release: Path) -> list[Flag]:
    """The static scan of what the student wrote (grader.grading.integrity.static_scan), against the release."""
    from grader.grading.integrity.static_scan import scan_submission

    releases = {}
    for release_notebook in sorted(release.glob("*.ipynb")):
        try:
            releases[release_notebook.name] = _read_release(release_notebook)
        except Exception:  # a broken release is nbgrader's error to report, not a flag
            continue
    return scan_submission(staged, releases)


def _read_release(path: Path) -> nbformat.NotebookNode:
    """The release notebook, parsed once per version of the file (every submission is checked
    against it twice). Callers only read it: tamper.py copies the cells it puts back."""
    state = path.stat()
    return _parse_release(str(path), state.st_mtime_ns, state.st_size)


@functools.lru_cache(maxsize=16)
def _parse_release(path: str, mtime_ns: int, size: int) -> nbformat.NotebookNode:
    return nbformat.read(path, as_version=4)


def _grade_one(course_dir: Path, config, assignment_id: str, student_id: str, context: _JobContext, store: ProgressStore) -> AutogradeOutcome:
    started = time.monotonic()
    coursedir = CourseDirectory(config=config)
    submitted = Path(coursedir.format_path(coursedir.submitted_directory, student_id, assignment_id))
    try:
        # Staging (copy, repair, static scan) touches only this student's folders: no lock.
        digest = fingerprint(submitted)
        changes, context.flags[:] = _stage_submission(course_dir, coursedir, assignment_id, student_id)
        # What `collect` refused to copy (links, devices...) is no longer in submitted/: its flags
        # were kept with the collect.
        collect_flags = store.collect_flags(assignment_id, student_id)
    except Exception as error:  # one submission never stops the batch
        return AutogradeOutcome(student_id, False, "error", error=f"{type(error).__name__}: {error}",
                                seconds=time.monotonic() - started)
    with GRADEBOOK_LOCK:
        try:
            coursedir.submitted_directory = STAGING_DIRECTORY
            coursedir.assignment_id, coursedir.student_id = assignment_id, student_id
            converter = _ThreadSafeAutograde(coursedir=coursedir, config=config)
            converter.force = True
            if "AutogradeApp" in config and "permissions" in config.AutogradeApp:
                # `nbgrader autograde --AutogradeApp.permissions=644` reaches its converter through
                # the app; there is no app here, so hand it over directly.
                converter.permissions = config.AutogradeApp.permissions
            converter.autograde_preprocessors = _with_forked_execute(converter.autograde_preprocessors)
            _job.context = context
            converter.start()
        except (NbGraderException, Exception) as error:  # one submission never stops the batch
            return AutogradeOutcome(student_id, False, "error", error=f"{type(error).__name__}: {error}",
                                    seconds=time.monotonic() - started)
        finally:
            _job.context = None
        worst = next((r for r in context.statuses if r.status != "ok"), None)
        flags = [Flag("tamper", change) for change in changes] + collect_flags + _unique(context.flags)
        if worst is not None:
            flags.append(Flag("limit", f"{worst.status}: {worst.reason}"))
        zeroed = False
        # "keep" changes no score; the gradebook is opened only to zero, or to undo an earlier
        # zeroing of a submission that was flagged when last graded.
        if context.policy != "keep" or context.previously_flagged(student_id):
            try:
                zeroed = apply_flagged_policy(coursedir.db_url, coursedir.course_id, assignment_id, student_id,
                                              [flag for flag in flags if flag.kind != "limit"], context.policy)
            except Exception as error:  # the grades are saved; the policy is reported, not fatal
                flags.append(Flag("runtime", f"flagged policy not applied: {error}"))
        outcome = AutogradeOutcome(
            student_id, True, worst.status if worst else "ok", worst.reason if worst else "",
            changes=changes, seconds=time.monotonic() - started, flags=flags, zeroed=zeroed,
        )
    # The progress store is its own database: its commit (a disk sync) need not hold up the gradebook.
    store.mark_done(GradedRecord(assignment_id, student_id, digest, outcome.status, outcome.reason, changes,
                                 outcome.seconds, flags=flags))
    return outcome


def _unique(flags: list[Flag]) -> list[Flag]:
    return list(dict.fromkeys(flags))


def _make_backend(scheduler: str | None, preload: list[str], isolate: bool = True):
    if scheduler:
        from grader.grading.executor.dask_backend import DaskBackend

        return DaskBackend(scheduler, preload=preload)
    from grader.grading.executor.client import Zygote

    return Zygote(preload, isolate=isolate)


def _default_limits(config) -> Limits:
    """The course's per-cell timeout, read exactly as ``nbgrader autograde`` reads it.

    nbgrader instantiates its ``Execute`` preprocessor with the course config, so the timeout comes
    through config inheritance: ``Execute.timeout`` if set, else ``ExecutePreprocessor.timeout``
    (what ``grader init`` writes), else ``NotebookClient.timeout``, else Execute's default of 30 s.
    None, 0 or a negative value mean no per-cell timeout for nbclient: then only the submission's
    wall-clock budget applies.
    """
    timeout = Execute(config=config).timeout
    if timeout is None or timeout <= 0:
        return Limits(cell_timeout=Limits.submission_timeout)
    return Limits(cell_timeout=float(timeout))


def _timeout_error_output(config) -> dict | None:
    """The output nbgrader adds to a cell that ran into the per-cell timeout, or None.

    nbclient interrupts the kernel and then takes ``Execute.error_on_timeout`` as the cell's reply,
    whether or not the cell's code caught the KeyboardInterrupt; nbgrader's ``on_cell_executed``
    appends it as an ``error`` output, so the cell scores zero if graded. A cell the executor
    interrupted at the timeout gets this output appended, after its own.
    """
    error = Execute(config=config).error_on_timeout
    return {"output_type": "error", **error} if error else None


def _preload_for(coursedir: CourseDirectory, assignment_id: str) -> list[str]:
    """What the assignment's source notebooks import; the general list when the source is absent."""
    source = Path(coursedir.format_path(coursedir.source_directory, ".", assignment_id))
    return assignment_preload(source) if any(source.glob("*.ipynb")) else DEFAULT_PRELOAD


def autograde_assignment(
    *,
    course_dir: Path,
    assignment_id: str,
    students: list[str] | None = None,
    workers: int | None = None,
    limits: Limits | None = None,
    limit_overrides: dict | None = None,
    preload: list[str] | None = None,
    scheduler: str | None = None,
    db_url: str | None = None,
    force: bool = False,
    progress: bool = True,
    isolate: bool = True,
) -> list[AutogradeOutcome]:
    """Autograde ``assignment_id`` for ``students`` (default: everyone who submitted).

    Already-graded submissions whose files are unchanged are skipped unless ``force``.
    ``limits`` defaults to the course's (its nbgrader ``Execute.timeout`` per cell);
    ``limit_overrides`` replaces single fields of it, e.g. ``{"memory_bytes": 1 << 30}``.
    ``isolate=False`` exists only to measure what the sandbox costs (benchmarks/autograde.py).
    """
    course_dir = Path(course_dir).resolve()
    config = load_course_config(course_dir)
    if db_url:
        config.CourseDirectory.db_url = db_url
    # nbconvert's own option: validate the notebook once after all of nbgrader's preprocessors,
    # not after each of them (twelve schema checks per pass); the notebook written is the same.
    config.Exporter.optimistic_validation = True
    coursedir = CourseDirectory(config=config)
    if students is None:
        submitted_root = Path(coursedir.root) / coursedir.submitted_directory
        students = sorted(p.parent.name for p in submitted_root.glob(f"*/{assignment_id}") if p.is_dir())
    workers = workers or os.cpu_count() or 1
    limits = dataclasses.replace(limits or _default_limits(config), **(limit_overrides or {}))
    store = ProgressStore(course_dir)

    outcomes, todo = [], []
    for student in students:
        folder = Path(coursedir.format_path(coursedir.submitted_directory, student, assignment_id))
        if folder.is_dir() and not any(folder.glob("*.ipynb")):
            # nbgrader matches `submitted/STUDENT/ASSIGNMENT/*.ipynb` and skips a folder with none
            # (a warning, no gradebook entry, no autograded folder): so does this.
            outcomes.append(AutogradeOutcome(student, True, "empty", "no notebooks in the submission folder", skipped=True))
            continue
        if not force and folder.is_dir() and store.is_done(assignment_id, student, fingerprint(folder)):
            outcomes.append(AutogradeOutcome(student, True, skipped=True))
        else:
            todo.append(student)
    if not todo:
        return outcomes

    policy = flagged_policy(config)
    flagged_before = frozenset(record.student_id for record in store.records(assignment_id) if record_flags(record))
    slots: queue.Queue[int] = queue.Queue()
    # On a cluster each worker claims slots on its own machine; locally, this run claims them.
    claim = None if scheduler else claim_sandbox_slots(workers)
    for slot in claim.slots if claim else range(workers):
        slots.put(slot)
    backend = _make_backend(scheduler, _preload_for(coursedir, assignment_id) if preload is None else preload, isolate)
    if progress and hasattr(backend, "describe"):
        print(backend.describe(), file=sys.stderr)  # once per run: what confines student code here

    def run(student: str) -> AutogradeOutcome:
        return _grade_one(course_dir, config, assignment_id, student, _JobContext(backend, slots, limits, policy, flagged_before), store)

    # nbgrader's converter changes into the course root and back; start there so every thread
    # sees the same working directory whichever thread changes it.
    previous = os.getcwd()
    os.chdir(course_dir)
    # nbgrader puts the course folder on sys.path: course plugins (a late-penalty class in
    # late_plugin.py) import from there.
    sys.path.insert(0, str(course_dir))
    # Student code and nbgrader's own preprocessors may test it (see _ThreadSafeAutograde).
    previous_execution = os.environ.get("NBGRADER_EXECUTION")
    os.environ["NBGRADER_EXECUTION"] = "autograde"
    # A thread whose submission just finished a cell must send the next one at once, even while
    # another thread is deep in nbgrader's bookkeeping: with the default 5 ms switch interval the
    # sandbox waited for the GIL at every cell.
    previous_switch = sys.getswitchinterval()
    sys.setswitchinterval(min(previous_switch, 0.0005))
    try:
        with faster_nbgrader(), ThreadPoolExecutor(max_workers=workers + 1) as pool, tqdm(
            total=len(todo), desc=f"autograde {assignment_id}", unit="submission", disable=not progress
        ) as bar:
            futures = [pool.submit(run, student) for student in todo]
            for future in as_completed(futures):
                outcome = future.result()
                outcomes.append(outcome)
                bar.update(1)
                if not outcome.success or outcome.status != "ok":
                    bar.set_postfix_str(f"{outcome.student_id}: {outcome.status}", refresh=False)
    finally:
        sys.setswitchinterval(previous_switch)
        os.chdir(previous)
        if str(course_dir) in sys.path:
            sys.path.remove(str(course_dir))
        if previous_execution is None:
            os.environ.pop("NBGRADER_EXECUTION", None)
        else:
            os.environ["NBGRADER_EXECUTION"] = previous_execution
        backend.close()
        if claim:
            claim.release()
    return sorted(outcomes, key=lambda outcome: outcome.student_id)
