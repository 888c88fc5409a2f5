"""The Dask backend grades like the local one, on a LocalCluster started by the test."""

from __future__ import annotations

import pytest

from grader.grading.autograde import autograde_assignment
from tests.grading.test_autograde import ASSIGNMENT, EXPECTED, TEST_LIMITS, autograded_scores, make_fixture_course

pytestmark = pytest.mark.slow
CASES = ["solution", "wrong", "blank", "os-exit", "tampered-tests"]


def test_grading_on_a_dask_cluster_gives_the_local_scores(tmp_path):
    from distributed import LocalCluster

    course = make_fixture_course(tmp_path, CASES)
    with LocalCluster(n_workers=1, threads_per_worker=2, processes=True, dashboard_address=None) as cluster:
        outcomes = autograde_assignment(
            course_dir=course.course_dir, assignment_id=ASSIGNMENT, workers=2, limits=TEST_LIMITS,
            preload=["numpy"], scheduler=cluster.scheduler_address, progress=False,
        )
    by_student = {outcome.student_id: outcome for outcome in outcomes}
    for case in CASES:
        scores, status, _ = EXPECTED[case]
        assert autograded_scores(course, case) == scores, case
        assert by_student[case].status == status
