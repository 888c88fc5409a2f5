"""docs/reading-list.md has an entry for every work the lessons cite, and the seeds' errata."""

from __future__ import annotations

import re

import nbformat
import pytest

from grader.resources import ASSIGNMENTS_SOURCE_DIR, COURSES_DIR, REPO_ROOT

READING_LIST = REPO_ROOT / "docs" / "reading-list.md"

# "Kaplan et al. 2020", "Zhang et al., 2017", "Ghorbani & Zou, 2019", "Kumar et al., *Title*, ICLR 2022",
# "Brown et al., 'Title', arXiv:2005.14165" (year from the arXiv number is not guessed: such rows carry a date).
CITATION = re.compile(
    r"\b([A-Z][A-Za-z\-]+)(?: et al\.?| (?:&|and) [A-Z][A-Za-z\-]+),?\s+"
    r"(?:[*'\"][^*'\"]{3,200}[*'\"],?\s+)?(?:[A-Z][A-Za-z\-]*\s+)?\(?((?:19|20)\d\d)\b"
)
ENTRY = re.compile(r"^- \*\*(.+?) \(((?:19|20)\d\d)\)\.\*\*", re.MULTILINE)


def _course_texts():
    for path in sorted(COURSES_DIR.rglob("*.ipynb")) + sorted(ASSIGNMENTS_SOURCE_DIR.rglob("*.ipynb")):
        if ".ipynb_checkpoints" in path.parts:
            continue
        yield path, "\n".join(cell.source for cell in nbformat.read(path, as_version=4).cells)
    for pattern in ("*.md", "*.csv", "*.py"):
        for path in sorted(COURSES_DIR.rglob(pattern)):
            yield path, path.read_text(encoding="utf-8")


def cited_works() -> dict[tuple[str, str], str]:
    """{(first author's surname, year): where it is cited} over the course's notebooks and files."""
    found = {}
    for path, text in _course_texts():
        for surname, year in CITATION.findall(" ".join(text.split())):
            found.setdefault((surname, year), str(path.relative_to(REPO_ROOT)))
    return found


def listed_works() -> set[tuple[str, str]]:
    entries = set()
    for authors, year in ENTRY.findall(READING_LIST.read_text(encoding="utf-8")):
        first = re.split(r",| & | et al", authors)[0].strip()
        entries.add((first.split()[-1], year))
    return entries


def test_the_lessons_cite_works_and_the_pattern_finds_them():
    cited = cited_works()
    # A few citations that are known to be in the lessons: if these vanish, the pattern broke.
    for known in [("Ghorbani", "2019"), ("Casado", "2020"), ("Zhang", "2017"), ("Kumar", "2022"), ("Brown", "2020")]:
        assert known in cited, f"{known} is no longer found in the lessons"


@pytest.mark.parametrize("work", sorted(cited_works()), ids=lambda w: f"{w[0]}-{w[1]}")
def test_every_cited_work_is_on_the_reading_list(work):
    assert work in listed_works(), f"{work[0]} ({work[1]}), cited in {cited_works()[work]}, is missing from docs/reading-list.md"


def test_the_seed_errata_are_corrected():
    text = READING_LIST.read_text(encoding="utf-8")
    superpowers = [line for line in text.splitlines() if "AI Superpowers" in line]
    assert superpowers and all("Kai-Fu Lee" in line for line in superpowers)
    assert ("Lee", "2018") in listed_works()
    brown = next(line for line in text.splitlines() if line.startswith("- **Brown et al. (2020).**"))
    assert "text" in brown and "2020" in brown
    assert "Representation Learning: A Review and New Perspectives" in text


def test_the_measured_serving_throughput_is_cited_in_full():
    # Case study 2 checks its calibrated roofline against one published measurement; the lesson, the
    # data table and the reading list must name the same source.
    text = READING_LIST.read_text(encoding="utf-8")
    entry = next(line for line in text.splitlines() if line.startswith("- **InternLM (2023).**"))
    for detail in ("Benchmark on A100 (FP16)", "llama2-70b", "33.94", "1,391.8", "docs/en/benchmark/a100_fp16.md"):
        assert detail in entry, detail
    lesson = COURSES_DIR / "03_monetisation" / "02_serving_unit_economics.ipynb"
    source = "\n".join(cell.source for cell in nbformat.read(lesson, as_version=4).cells)
    assert "Benchmark on A100 (FP16)" in source and "lmdeploy_llama2_70b_batch64" in source
