"""Instant feedback's part of the service: one :class:`CourseGrader` per course the admin enabled."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from grader.exchange.service.instant.dispatcher import CourseGrader
from grader.exchange.service.instant.lessons import LessonTracker
from grader.exchange.service.instant.state import InstantState

STATE_FILE = ".instant.sqlite"
FEEDBACK_FOLDER = ".instant-feedback"


@dataclass
class InstantFeedback:
    state: InstantState | None = None
    graders: dict[str, CourseGrader] = field(default_factory=dict)
    feedback_root: Path | None = None
    lessons: LessonTracker = field(default_factory=lambda: LessonTracker(lessons_dir=None, homes_dir=None))

    @classmethod
    def create(cls, *, root: Path, course_dirs: dict[str, Path], workers: int = 2, batch_timeout: float = 900.0,
               lessons_dir: Path | None = None, homes_dir: Path | None = None) -> "InstantFeedback":
        """``course_dirs``: the courses the admin enabled instant feedback for, by id; the lessons
        students opened are read from ``homes_dir`` (the course pages show them for every course)."""
        lessons = LessonTracker(lessons_dir=lessons_dir, homes_dir=homes_dir)
        if not course_dirs:
            return cls(lessons=lessons)
        Path(root).mkdir(parents=True, exist_ok=True)
        state = InstantState(Path(root) / STATE_FILE)
        feedback_root = Path(root) / FEEDBACK_FOLDER
        graders = {course_id: CourseGrader(course_id=course_id, course_dir=course_dir, state=state,
                                           feedback_root=feedback_root / course_id, workers=workers,
                                           batch_timeout=batch_timeout)
                   for course_id, course_dir in course_dirs.items()}
        return cls(state, graders, feedback_root, lessons)

    def start(self) -> None:
        for grader in self.graders.values():
            grader.start()

    async def close(self) -> None:
        for grader in self.graders.values():
            await grader.close()
        if self.state is not None:
            self.state.close()
