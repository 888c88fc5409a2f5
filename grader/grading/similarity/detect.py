"""Pairs of students whose answers share long passages, from winnowed fingerprints.

1. Each document's tokens (:mod:`.tokens`) lose every passage of ``K`` tokens that is in the
   released starter code or in the instructor's solution (per cell, both sides), so what is left is
   what the student wrote. What the instructor's solution covered is counted (``solution_share``):
   a class copying a leaked model solution shows there, not as pairs.
2. What is left is one stream per student, across all their answer cells, so an answer split
   over more cells, merged, or with its functions reordered loses only the k-grams at the seams.
   Winnowing picks its fingerprints (:mod:`.fingerprints`).
3. An index from fingerprint to documents gives the candidate pairs without comparing all of
   them. A fingerprint in more than ``max(COMMON_DOCS, COMMON_SHARE * documents)`` documents is an
   idiom of the assignment, not copying (MOSS's ``-m``), and is ignored.
4. Each candidate's score is computed exactly: the share of one student's remaining tokens that
   lie in a passage of at least ``K`` tokens also in the other's; the pair's score is the larger of
   the two shares (a short answer wholly inside a longer one scores high). Shares are taken of at
   least ``MIN_TOKENS`` tokens, so a nearly empty answer cannot score high on a line or two.

Pairs within the corpus (earlier terms) are never made, nor pairs of one student id with itself:
one document per student, and a student's own earlier submission is their own work.
"""

from __future__ import annotations

import datetime
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from grader.grading.course_config import read_course_config
from grader.grading.course_folders import submitted_students
from grader.grading.errors import GraderError
from grader.grading.similarity.documents import Document, Excluded, excluded_documents, student_document
from grader.grading.similarity.fingerprints import K, contains, covered, kgram_hashes, token_ids, winnow
from grader.grading.similarity.tokens import Token

# Chosen from the planted cases of tests/grading/test_similarity.py (docs/similarity.md has the
# numbers): copies score 0.75 and more, independent solutions 0.25 and less.
DEFAULT_THRESHOLD = 0.5
COMMON_DOCS = 10
COMMON_SHARE = 0.1
MIN_TOKENS = 60


@dataclass
class Prepared:
    """A document ready to compare: the tokens left after exclusion, their k-gram hashes and fingerprints."""

    document: Document
    tokens: list[Token]
    hashes: np.ndarray  # of every k-gram, in order
    fingerprints: np.ndarray  # distinct, sorted
    distinct: np.ndarray  # every k-gram's hash once, sorted
    answer_tokens: int  # tokens once the starter is taken out
    solution_share: float  # of those, the share in passages of the instructor's solution


@dataclass(frozen=True)
class Pair:
    a: Prepared
    b: Prepared
    score: float
    a_in_b: float  # share of a's answer in passages also in b's
    b_in_a: float
    threshold: float

    @property
    def flagged(self) -> bool:
        return self.score >= self.threshold


@dataclass
class SimilarityResult:
    assignment_id: str
    threshold: float
    students: list[Prepared]
    corpus: list[Prepared] = field(default_factory=list)
    corpus_folders: list[str] = field(default_factory=list)
    pairs: list[Pair] = field(default_factory=list)  # every pair scored, highest first
    generated: str = ""
    common: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=np.uint64))  # fingerprints ignored

    @property
    def flagged(self) -> list[Pair]:
        return [pair for pair in self.pairs if pair.flagged]


def _cell_slices(tokens: list[Token]) -> list[tuple[int, int]]:
    slices, start = [], 0
    for index in range(1, len(tokens) + 1):
        if index == len(tokens) or tokens[index].cell != tokens[start].cell:
            slices.append((start, index))
            start = index
    return slices if tokens else []


def _cell_hashes(document: Document) -> list[tuple[int, int, np.ndarray]]:
    """(first token, k, k-gram hashes) of each cell; a cell shorter than ``K`` tokens is one shorter
    k-gram, so that a short starter cell ("YOUR ANSWER HERE") is taken out too."""
    ids = token_ids([token.text for token in document.tokens])
    return [(start, min(K, end - start), kgram_hashes(ids[start:end], min(K, end - start)))
            for start, end in _cell_slices(document.tokens)]


def excluded_hashes(documents: list[Document]) -> np.ndarray:
    parts = [hashes for document in documents for _, _, hashes in _cell_hashes(document)]
    return np.unique(np.concatenate(parts)) if parts else np.empty(0, dtype=np.uint64)


def prepare(document: Document, starter: np.ndarray, solution: np.ndarray) -> Prepared:
    """(``starter`` and ``solution``: sorted distinct hashes, as :func:`excluded_hashes` gives.) Take the starter's and the solution's passages out of ``document``; fingerprint the rest."""
    length = len(document.tokens)
    in_starter, in_solution = np.zeros(length, dtype=bool), np.zeros(length, dtype=bool)
    for start, k, hashes in _cell_hashes(document):
        if len(hashes):
            end = start + len(hashes) + k - 1
            in_starter[start:end] |= covered(np.flatnonzero(contains(starter, hashes)), end - start, k)
            in_solution[start:end] |= covered(np.flatnonzero(contains(solution, hashes)), end - start, k)
    answer = ~in_starter
    kept = answer & ~in_solution
    tokens = [token for token, keep in zip(document.tokens, kept) if keep]
    hashes = kgram_hashes(token_ids([token.text for token in tokens]))
    answer_tokens = int(answer.sum())
    return Prepared(document, tokens, hashes, np.unique(hashes[winnow(hashes)]), np.unique(hashes), answer_tokens,
                    float((answer & in_solution).sum()) / answer_tokens if answer_tokens else 0.0)


def shared_mask(a: Prepared, b: Prepared, ignored: np.ndarray | None = None) -> np.ndarray:
    """The tokens of ``a`` in a k-gram that ``b`` has too (and that is not ``ignored``)."""
    shared = contains(b.distinct, a.hashes)
    if ignored is not None and len(ignored):
        shared &= ~contains(ignored, a.hashes)
    return covered(np.flatnonzero(shared), len(a.tokens))


def _share(mask: np.ndarray) -> float:
    return float(mask.sum()) / max(len(mask), MIN_TOKENS)


def score_pair(a: Prepared, b: Prepared, threshold: float, ignored: np.ndarray | None = None) -> Pair:
    a_in_b, b_in_a = _share(shared_mask(a, b, ignored)), _share(shared_mask(b, a, ignored))
    return Pair(a, b, max(a_in_b, b_in_a), a_in_b, b_in_a, threshold)


def find_pairs(students: list[Prepared], corpus: list[Prepared], threshold: float) -> tuple[list[Pair], np.ndarray]:
    """Every pair worth scoring, scored, highest first; and the fingerprints ignored as common."""
    documents = students + corpus
    postings: dict[int, list[int]] = defaultdict(list)
    for number, prepared in enumerate(documents):
        for fingerprint in prepared.fingerprints.tolist():
            postings[fingerprint].append(number)
    limit = max(COMMON_DOCS, COMMON_SHARE * len(documents))
    common = np.array(sorted(h for h, docs in postings.items() if len(docs) > limit), dtype=np.uint64)
    shared: dict[tuple[int, int], int] = defaultdict(int)
    first_corpus = len(students)
    for docs in postings.values():
        if len(docs) < 2 or len(docs) > limit:
            continue
        for position, i in enumerate(docs):
            if i >= first_corpus:
                break  # postings are ascending: the rest are corpus too
            for j in docs[position + 1:]:
                shared[i, j] += 1
    pairs = []
    for (i, j), count in shared.items():
        a, b = documents[i], documents[j]
        if a.document.student_id == b.document.student_id:
            continue
        # Winnowed fingerprints estimate the share; only pairs that might reach half the threshold
        # are scored exactly.
        estimate = count / max(min(len(a.fingerprints), len(b.fingerprints)), 1)
        if estimate >= threshold / 2:
            pairs.append(score_pair(a, b, threshold, common))
    pairs.sort(key=lambda pair: (-pair.score, pair.a.document.label, pair.b.document.label))
    return pairs, common


def assignment_notebooks(source_dir: Path) -> list[str]:
    return sorted(path.name for path in source_dir.glob("*.ipynb") if path.is_file())


def corpus_documents(folder: Path, assignment_id: str, notebooks: list[str]) -> list[Document]:
    """The submissions of ``assignment_id`` in an earlier term's ``submitted/STUDENT/ASSIGNMENT``
    folders: ``folder`` is that ``submitted/`` folder or the course directory holding it."""
    folder = Path(folder)
    root = folder / "submitted" if (folder / "submitted").is_dir() else folder
    if not root.is_dir():
        raise GraderError(f"{folder}: no such corpus folder")
    documents = []
    for student in sorted(path for path in root.iterdir() if (path / assignment_id).is_dir()):
        names = notebooks if any((student / assignment_id / name).is_file() for name in notebooks) \
            else assignment_notebooks(student / assignment_id)  # renamed notebooks in an earlier term
        documents.append(student_document(student.name, student / assignment_id, names, origin=str(folder)))
    return documents


def compare_assignment(*, course_dir: Path, assignment_id: str, corpus: list[Path] = (),
                       threshold: float = DEFAULT_THRESHOLD) -> SimilarityResult:
    """Score the pairs of ``assignment_id``'s submissions, and of each against ``corpus``."""
    course_dir = Path(course_dir).resolve()
    settings = read_course_config(course_dir)
    source_dir = Path(settings.format_path(settings.source_directory, student_id=".", assignment_id=assignment_id))
    notebooks = assignment_notebooks(source_dir)
    if not notebooks:
        raise GraderError(f"{assignment_id}: no notebooks in {source_dir}")
    release_dir = course_dir / "release" / assignment_id
    excluded: Excluded = excluded_documents(source_dir, release_dir if release_dir.is_dir() else None, notebooks)
    starter, solution = excluded_hashes(excluded.starter), excluded_hashes(excluded.solution)

    def prepared(documents: list[Document]) -> list[Prepared]:
        return [prepare(document, starter, solution) for document in documents]

    students = prepared([
        student_document(student, Path(settings.format_path(settings.submitted_directory, student_id=student,
                                                            assignment_id=assignment_id)), notebooks)
        for student in sorted(submitted_students(settings, assignment_id))])
    earlier = prepared([document for folder in corpus for document in corpus_documents(folder, assignment_id, notebooks)])
    pairs, common = find_pairs(students, earlier, threshold)
    return SimilarityResult(
        assignment_id, threshold, students, earlier, [str(folder) for folder in corpus], pairs,
        datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"), common)
