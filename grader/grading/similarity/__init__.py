"""``grader similarity ASSIGNMENT``: which students' answers share long passages.

Only answer cells are compared (:mod:`.documents`), with the released starter code and the
instructor's solution taken out, after normalising away names, literals, comments and layout
(:mod:`.tokens`); winnowed k-gram fingerprints (:mod:`.fingerprints`) find the pairs without
comparing every pair (:mod:`.detect`). The results go to a JSON file in the course directory and an
HTML page with the matching passages side by side (:mod:`.output`). Nothing is decided: a pair's
score is for a person to read. docs/similarity.md says why the winnowing is this project's own
rather than copydetect's, and how the default threshold was chosen.
"""

from __future__ import annotations

from pathlib import Path

from grader.grading.similarity.detect import DEFAULT_THRESHOLD, SimilarityResult, compare_assignment


def run_similarity(*, course_dir: Path, assignment_id: str, corpus: list[Path] = (),
                   threshold: float = DEFAULT_THRESHOLD, out_dir: Path | None = None) -> tuple[SimilarityResult, Path, Path]:
    """Compare ``assignment_id``'s submissions (and each against ``corpus``); write the HTML page and
    the JSON results; return the result and both paths."""
    from grader.grading.similarity.output import write_results

    result = compare_assignment(course_dir=course_dir, assignment_id=assignment_id, corpus=list(corpus), threshold=threshold)
    html_path, json_path = write_results(result, course_dir=Path(course_dir).resolve(), out_dir=out_dir)
    return result, html_path, json_path


__all__ = ["DEFAULT_THRESHOLD", "SimilarityResult", "compare_assignment", "run_similarity"]
