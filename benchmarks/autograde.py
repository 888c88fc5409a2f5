"""Benchmark: `grader autograde` against `nbgrader autograde` on the same submissions, in one run.

    .venv/bin/python benchmarks/autograde.py                 # 200 submissions of a2_lora
    .venv/bin/python benchmarks/autograde.py -n 40 --assignment a1_backprop

It generates N submissions of a real assignment of this course (a quarter each: correct, wrong —
one answer left unanswered —, broken — an exception in the first answer —, slow — correct plus a
0.3 s sleep), grades a copy of the course with each tool, checks that every gradebook row is
identical, and prints both wall times and their ratio. It also prints the *floor*: the same code
cells run by a process that imported the libraries once and forks per submission, with no
IPython, nbgrader, sandbox or limits, and our ratio to it.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import nbformat
from tqdm.auto import tqdm

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from grader.grading.autograde import autograde_assignment  # noqa: E402
from grader.grading.course_dir import Course, prepare_course_dir  # noqa: E402
from grader.grading.executor.preload import assignment_preload  # noqa: E402
from grader.grading.gradebook import grade_rows  # noqa: E402
from grader.grading.nbgrader_api import checked, open_api  # noqa: E402

KINDS = ("correct", "wrong", "broken", "slow")


def _solutions(source: nbformat.NotebookNode) -> dict[str, str]:
    answers = {}
    for cell in source.cells:
        meta = cell.metadata.get("nbgrader", {})
        if meta.get("solution") and cell.cell_type == "code":
            lines = cell.source.splitlines()
            answers[meta["grade_id"]] = "\n".join(l for l in lines if "### BEGIN SOLUTION" not in l and "### END SOLUTION" not in l)
    return answers


def make_submission(release, answers: dict[str, str], kind: str) -> nbformat.NotebookNode:
    notebook = copy.deepcopy(release)
    answer_cells = [c for c in notebook.cells if c.metadata.get("nbgrader", {}).get("grade_id") in answers]
    for index, cell in enumerate(answer_cells):
        grade_id = cell.metadata["nbgrader"]["grade_id"]
        if kind == "wrong" and index == len(answer_cells) // 2:
            continue  # this answer stays as released: its tests fail
        cell.source = answers[grade_id]
    if kind == "broken":
        answer_cells[0].source = "raise RuntimeError('half-finished work')\n" + answer_cells[0].source
    if kind == "slow":
        answer_cells[0].source += "\nimport time\ntime.sleep(0.3)"
    return notebook


def build_course(workdir: Path, assignment: str, count: int) -> Course:
    course = Course("bench101", workdir / "course", workdir / "exchange")
    prepare_course_dir(course)
    with open_api(course.course_dir) as api:
        checked(api.generate_assignment(assignment), f"generate {assignment}")
    release_dir = course.course_dir / "release" / assignment
    source_dir = course.source_dir / assignment
    for notebook_path in sorted(release_dir.glob("*.ipynb")):
        release = nbformat.read(notebook_path, as_version=4)
        answers = _solutions(nbformat.read(source_dir / notebook_path.name, as_version=4))
        for number in range(count):
            kind = KINDS[number % len(KINDS)]
            folder = course.course_dir / "submitted" / f"{kind}{number:04d}" / assignment
            folder.mkdir(parents=True, exist_ok=True)
            nbformat.write(make_submission(release, answers, kind), folder / notebook_path.name)
            (folder / "timestamp.txt").write_text("2026-11-20 10:00:00.000000 UTC")
            for extra in release_dir.iterdir():
                if extra.suffix != ".ipynb" and not (folder / extra.name).exists():
                    (shutil.copytree if extra.is_dir() else shutil.copy2)(extra, folder / extra.name)
    return course


def all_rows(course: Course, assignment: str, students: list[str]) -> dict:
    return {
        student: [(r.notebook, r.cell, r.auto_score, r.manual_score, r.max_score)
                  for r in grade_rows(course.gradebook_url, course_id=course.course_id, assignment_id=assignment, student_id=student)]
        for student in students
    }


def run_floor(submitted_root: Path, assignment: str, workers: int, preload: list[str]) -> float:
    """Wall time of the floor, measured in a fresh process (import once, fork per submission)."""
    started = time.monotonic()
    subprocess.run([sys.executable, __file__, "--floor-worker", str(submitted_root), assignment, str(workers), ",".join(preload)], check=True)
    return time.monotonic() - started


def floor_worker(submitted_root: str, assignment: str, workers: int, preload: str) -> None:
    import importlib
    import warnings

    warnings.filterwarnings("ignore")
    for module in filter(None, preload.split(",")):
        importlib.import_module(module)
    jobs = sorted(Path(submitted_root).glob(f"*/{assignment}/*.ipynb"))
    running: set[int] = set()
    for path in jobs:
        while len(running) >= workers:
            running.discard(os.wait()[0])
        pid = os.fork()
        if pid == 0:
            os.chdir(path.parent)
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, 1)
            os.dup2(devnull, 2)
            namespace = {"__name__": "__main__"}
            for cell in nbformat.read(path, as_version=4).cells:
                if cell.cell_type == "code":
                    try:
                        exec(compile(cell.source, str(path), "exec"), namespace)
                    except BaseException:
                        pass
            os._exit(0)
        running.add(pid)
    while running:
        running.discard(os.wait()[0])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-n", "--submissions", type=int, default=200)
    parser.add_argument("--assignment", default="a2_lora")
    parser.add_argument("--workers", type=int, default=os.cpu_count())
    parser.add_argument("--workdir", type=Path, default=None, help="keep the courses here (default: a temporary folder)")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures to this file")
    args = parser.parse_args()

    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="bench-autograde-"))
    print(f"building {args.submissions} submissions of {args.assignment} in {workdir}", flush=True)
    ours = build_course(workdir / "grader", args.assignment, args.submissions)
    theirs_dir = workdir / "nbgrader" / "course"
    shutil.copytree(ours.course_dir, theirs_dir, symlinks=True)
    (theirs_dir / "nbgrader_config.py").write_text(
        (ours.course_dir / "nbgrader_config.py").read_text().replace(str(ours.course_dir), str(theirs_dir))
    )
    theirs = Course(ours.course_id, theirs_dir, workdir / "grader" / "exchange")
    students = sorted(p.name for p in (ours.course_dir / "submitted").iterdir())

    print("nbgrader autograde ...", flush=True)
    started = time.monotonic()
    with tqdm(total=len(students), desc="nbgrader", unit="submission") as bar:
        process = subprocess.Popen([sys.executable, "-m", "nbgrader", "autograde", args.assignment, "--force"],
                                   cwd=theirs_dir, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        for line in process.stderr:  # nbgrader logs one "Autograding" line per submission notebook
            if "Autograding" in line and "/autograded/" in line:
                bar.update(1)
        process.wait()
    nbgrader_seconds = time.monotonic() - started

    print("grader autograde ...", flush=True)
    started = time.monotonic()
    outcomes = autograde_assignment(course_dir=ours.course_dir, assignment_id=args.assignment, workers=args.workers, force=True)
    grader_seconds = time.monotonic() - started

    # What the sandbox (user, namespaces, allow-list root, cgroup) costs: the same run without it.
    print("grader autograde without isolation ...", flush=True)
    started = time.monotonic()
    autograde_assignment(course_dir=ours.course_dir, assignment_id=args.assignment, workers=args.workers, force=True,
                         isolate=False, progress=False)
    unisolated_seconds = time.monotonic() - started
    flags = {o.student_id: o.flags for o in outcomes if o.flags}

    print("floor ...", flush=True)
    # The same libraries the grader's executor preloads for this assignment (its imports).
    preload = assignment_preload(ours.source_dir / args.assignment)
    floor_seconds = run_floor(ours.course_dir / "submitted", args.assignment, args.workers, preload)

    ours_rows, theirs_rows = all_rows(ours, args.assignment, students), all_rows(theirs, args.assignment, students)
    identical = [s for s in students if ours_rows[s] == theirs_rows[s] and ours_rows[s]]
    different = [s for s in students if s not in identical]
    n = len(students)
    figures = {
        "submissions": n, "workers": args.workers, "assignment": args.assignment,
        "nbgrader_seconds": round(nbgrader_seconds, 2), "grader_seconds": round(grader_seconds, 2),
        "floor_seconds": round(floor_seconds, 2), "speedup_vs_nbgrader": round(nbgrader_seconds / grader_seconds, 2),
        "ratio_to_floor": round(grader_seconds / floor_seconds, 2), "identical_submissions": len(identical),
        "gradebook_rows": sum(len(rows) for rows in ours_rows.values()), "grader_failures": sum(not o.success for o in outcomes),
        "grader_unisolated_seconds": round(unisolated_seconds, 2),
        "isolation_ms_per_submission": round(1000 * (grader_seconds - unisolated_seconds) / n, 1),
        "flagged_submissions": len(flags),
    }
    print()
    print(f"submissions: {n} of {args.assignment} ({', '.join(KINDS)}), workers: {args.workers}, nbgrader exit code {process.returncode}")
    print(f"nbgrader autograde: {nbgrader_seconds:8.1f} s  ({nbgrader_seconds / n:.2f} s/submission)")
    print(f"grader autograde:   {grader_seconds:8.1f} s  ({grader_seconds / n:.2f} s/submission)"
          f"  -> {nbgrader_seconds / grader_seconds:.1f}x faster than nbgrader")
    print(f"floor (import {', '.join(preload)} once, fork per submission, plain exec): {floor_seconds:.1f} s"
          f"  -> grader is {grader_seconds / floor_seconds:.2f}x the floor")
    print(f"isolation (user, namespaces, allow-list root, cgroup): {figures['isolation_ms_per_submission']:.0f} ms per submission"
          f" (the same run without it: {unisolated_seconds:.1f} s)")
    print(f"scores identical: {len(identical)}/{n} submissions, {figures['gradebook_rows']} gradebook rows")
    print(f"flagged submissions: {len(flags)} of {n}" + "".join(f"\n  {s}: {[f.reason for f in fl][:3]}" for s, fl in list(flags.items())[:5]))
    if different:
        print(f"DIFFERENT: {different[:10]}")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))
    if not args.workdir:
        shutil.rmtree(workdir, ignore_errors=True)
    sys.exit(1 if different else 0)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--floor-worker":
        floor_worker(sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5])
    else:
        main()
