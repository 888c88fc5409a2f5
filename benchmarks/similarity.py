"""Benchmark: ``grader similarity`` on a class of synthetic A1 submissions, pairs per second.

Builds a throw-away course whose ``source/`` is the real A1 and writes ``--students`` submissions:
each answer region is one of three correct solutions (the instructor's and the two students' of
tests/grading/test_similarity.py) with a few random statements of the student's own added, so no
two are alike; every 25th student hands in a copy of an earlier student's notebook. Then times

- ours: :func:`grader.grading.similarity.compare_assignment` end to end (read the notebooks,
  normalise, take out starter and solution, fingerprint, index, score), and writing the JSON and HTML;
- naive difflib: ``SequenceMatcher.ratio`` on every pair of a sample of the same documents, given
  our normalised token streams (so it gets our normalisation for free);
- naive copydetect, when it is importable: ``CodeFingerprint`` per document and ``compare_files``
  on every pair of the sample, as its own all-pairs loop does.

Pairs per second is the class's ``n (n - 1) / 2`` pairs over the time taken; for the naive ones,
the sample's pairs over their time. Run: ``python benchmarks/similarity.py [--students 500]``.
"""

from __future__ import annotations

import argparse
import io
import itertools
import json
import random
import re
import sys
import tempfile
import time
from difflib import SequenceMatcher
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from grader.grading.course_dir import Course, prepare_course_dir  # noqa: E402
from grader.grading.similarity import compare_assignment  # noqa: E402
from grader.grading.similarity.output import write_results  # noqa: E402
from grader.resources import ASSIGNMENTS_SOURCE_DIR  # noqa: E402
from tests.grading.test_similarity import A1, A1_A, A1_B, fill  # noqa: E402

REGION = re.compile(r"^([ \t]*)### BEGIN SOLUTION\n(.*?)^[ \t]*### END SOLUTION", re.MULTILINE | re.DOTALL)
ATTRIBUTES = ["sum", "mean", "max", "min", "exp", "log", "sqrt", "abs", "clip", "argmax", "cumsum", "dot",
              "maximum", "minimum", "where", "zeros_like", "ones_like", "reshape", "transpose", "std"]
OPERATORS = ["+", "-", "*", "/", "**", "@", "//", "%"]


def instructor_answers() -> dict[str, list[str]]:
    source = json.loads((ASSIGNMENTS_SOURCE_DIR / A1 / f"{A1}.ipynb").read_text())
    answers = {}
    for cell in source["cells"]:
        nbgrader = cell.get("metadata", {}).get("nbgrader", {})
        if nbgrader.get("solution") and cell["cell_type"] == "code":
            text = "".join(cell["source"])
            answers[nbgrader["grade_id"]] = [
                "\n".join(line[len(match.group(1)):] for line in match.group(2).rstrip("\n").splitlines())
                for match in REGION.finditer(text)]
    answers["written_answer"] = A1_A["written_answer"]
    return answers


def own_statement(rng: random.Random) -> str:
    """A random line a student might add (a check, a temporary, a debugging value)."""
    names = ["tmp", "check", "scale", "eps", "debug"]
    return (f"{rng.choice(names)}{rng.randint(0, 9)} = np.{rng.choice(ATTRIBUTES)}("
            f"{rng.choice(['x', 'z', 'dout', 'params', 'X', 'logits', 'lr'])}) {rng.choice(OPERATORS)} "
            f"{rng.choice(['1', '2.5', 'len(X)', 'np.' + rng.choice(ATTRIBUTES) + '(1.0)'])}")


def synthetic_answers(rng: random.Random, pool: list[dict[str, list[str]]]) -> dict[str, list[str]]:
    answers = {}
    for grade_id in pool[0]:
        if grade_id == "written_answer":
            words = " ".join(rng.choice(pool)[grade_id][0].split())
            sentences = words.split(". ")
            rng.shuffle(sentences)
            answers[grade_id] = [". ".join(sentences[: max(3, len(sentences) // 2)])]
            continue
        bodies = []
        for body in rng.choice(pool)[grade_id]:
            lines = body.splitlines()
            for _ in range(rng.randint(1, 3)):
                # Only at the top level of the body, before its last line (the return).
                position = rng.randrange(0, max(1, len(lines) - 1))
                if not lines[position].startswith((" ", "return")):
                    lines.insert(position, own_statement(rng))
            bodies.append("\n".join(lines))
        answers[grade_id] = bodies
    return answers


def build_class(root: Path, students: int, seed: int) -> Path:
    course = Course("bench", root / "course", root / "exchange", ASSIGNMENTS_SOURCE_DIR)
    prepare_course_dir(course)
    from grader.grading.similarity.documents import read_cells, released_version

    source = json.loads((ASSIGNMENTS_SOURCE_DIR / A1 / f"{A1}.ipynb").read_text())
    for cell, (original, text) in zip(source["cells"], read_cells(ASSIGNMENTS_SOURCE_DIR / A1 / f"{A1}.ipynb")):
        cell["source"] = released_version(original, text)
    rng = random.Random(seed)
    pool = [instructor_answers(), A1_A, A1_B]
    written: list[str] = []
    for number in range(students):
        student = f"student{number:04d}"
        folder = course.course_dir / "submitted" / student / A1
        folder.mkdir(parents=True)
        if number % 25 == 24:  # a copy of an earlier student's notebook
            text = (course.course_dir / "submitted" / rng.choice(written) / A1 / f"{A1}.ipynb").read_text()
        else:
            text = json.dumps(fill(source, synthetic_answers(rng, pool)))
        (folder / f"{A1}.ipynb").write_text(text)
        written.append(student)
    return course.course_dir


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--students", type=int, default=500)
    parser.add_argument("--sample", type=int, default=60, help="documents in the naive baselines' all-pairs sample")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    pairs = args.students * (args.students - 1) // 2
    with tempfile.TemporaryDirectory() as tmp:
        course_dir = build_class(Path(tmp), args.students, args.seed)
        started = time.perf_counter()
        result = compare_assignment(course_dir=course_dir, assignment_id=A1)
        compared = time.perf_counter() - started
        started = time.perf_counter()
        write_results(result, course_dir=course_dir)
        written = time.perf_counter() - started
        ours = pairs / compared
        print(f"ours: {args.students} submissions of {A1}, {pairs} pairs in {compared:.2f} s "
              f"({ours:,.0f} pairs/s); {len(result.flagged)} flagged, {len(result.pairs)} scored exactly; "
              f"JSON and HTML written in {written:.2f} s")

        sample = result.students[: args.sample]
        streams = [[token.text for token in prepared.tokens] for prepared in sample]
        sample_pairs = len(sample) * (len(sample) - 1) // 2
        started = time.perf_counter()
        for a, b in itertools.combinations(streams, 2):
            SequenceMatcher(None, a, b, autojunk=False).ratio()
        naive = sample_pairs / (time.perf_counter() - started)
        print(f"naive difflib: {sample_pairs} pairs of {len(sample)} documents, {naive:,.0f} pairs/s "
              f"(all {pairs} pairs would take {pairs / naive:.0f} s); ours is {ours / naive:,.0f}x faster")

        try:
            from copydetect import CodeFingerprint, compare_files
        except ImportError:
            print("naive copydetect: not installed (pip install copydetect to compare)")
            return
        texts = ["\n\n".join(cell.source for cell in prepared.document.cells if cell.kind == "code")
                 for prepared in sample]
        started = time.perf_counter()
        prints = [CodeFingerprint(f"{index}.py", 25, 1, fp=io.StringIO(text)) for index, text in enumerate(texts)]
        for a, b in itertools.combinations(prints, 2):
            compare_files(a, b)
        library = sample_pairs / (time.perf_counter() - started)
        print(f"naive copydetect (defaults k=25 characters, window 1): {library:,.0f} pairs/s "
              f"(all {pairs} pairs would take {pairs / library:.0f} s); ours is {ours / library:,.0f}x faster")


if __name__ == "__main__":
    main()
