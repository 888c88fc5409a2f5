"""The few settings of a course's ``nbgrader_config.py`` that ``grader status`` needs, read without
importing nbgrader or traitlets.

Importing nbgrader runs its package ``__init__`` (server extensions, exchange, nbformat,
jsonschema): about 2 s, against some 0.06 s of work for ``grader status``. So the config file is
parsed here as data when it is plainly that: ``c = get_config()`` and ``c.Section.trait = <literal>``
lines, nothing else, and no setting that this module does not model among those that decide what
status reads (the paths of ``source/`` and ``submitted/``, the gradebook, the exchange listing).

Any other file (an ``import``, an ``if``, ``load_subconfig``, a computed value, a custom exchange
lister or authenticator...) is read by nbgrader's own loader (:func:`~grader.grading.nbgrader_api.load_course_config`),
as every other verb reads it: when this reader cannot be certain what nbgrader would make of the
file, nbgrader decides.
"""

from __future__ import annotations

import ast
import os
import re
from dataclasses import dataclass
from pathlib import Path

from grader.exchange.plugins.config import PLUGIN_CLASSES
from grader.grading.errors import GraderError

# nbgrader's defaults (nbgrader.coursedir.CourseDirectory, nbgrader.exchange.default.Exchange, 0.9.6).
_DEFAULT_STRUCTURE = os.path.join("{nbgrader_step}", "{student_id}", "{assignment_id}")
_DEFAULT_EXCHANGE_ROOT = "/usr/local/share/nbgrader/exchange"

# CourseDirectory traits this module models, and those that change nothing status reads.
_COURSE_DIRECTORY_READ = {"course_id", "root", "db_url", "directory_structure", "source_directory", "submitted_directory"}
_COURSE_DIRECTORY_IGNORED = {"release_directory", "autograded_directory", "feedback_directory", "solution_directory",
                             "ignore", "include", "max_file_size", "max_dir_size", "student_id_exclude", "notebook_id"}
# Exchange traits: the root is where released assignments are listed; the others are about fetching.
_EXCHANGE_IGNORED = {"cache", "path_includes_course", "timezone", "timestamp_format"}
# Sections that would configure the exchange lister or the course directory by inheritance, or
# replace how released assignments are listed (the HTTP exchange): left to nbgrader.
_DECIDED_BY_NBGRADER = {"ExchangeList", "ABCExchangeList", "ABCExchange", "Authenticator", "NbGraderAPI",
                        "LoggingConfigurable", "Configurable", "SingletonConfigurable"}


@dataclass(frozen=True)
class CourseConfig:
    """Where a course's files and gradebook are, as nbgrader's ``CourseDirectory`` would say."""

    course_id: str
    root: str  # the course directory, absolute (load_course_config pins it there)
    db_url: str
    directory_structure: str = _DEFAULT_STRUCTURE
    source_directory: str = "source"
    submitted_directory: str = "submitted"
    # The file exchange root, when released assignments are listed by nbgrader's own file lister;
    # None: another lister, so nbgrader's API must list them (or http_exchange says how).
    exchange_root: str | None = _DEFAULT_EXCHANGE_ROOT
    # (service_url, api_token) of this project's HTTP exchange, configured exactly as the hub writes
    # it (grader.exchange.plugins.config.http_exchange_config); empty strings: from the environment.
    http_exchange: tuple[str, str] | None = None

    def format_path(self, nbgrader_step: str, student_id: str, assignment_id: str, escape: bool = False) -> str:
        """nbgrader's ``CourseDirectory.format_path``, line for line (0.9.6)."""
        kwargs = dict(nbgrader_step=nbgrader_step, student_id=student_id, assignment_id=assignment_id)
        if escape:
            structure = [part.format(**kwargs) for part in _full_split(self.directory_structure)]
            base = [re.escape(self.root)] if not structure or not structure[0].startswith(os.sep) else []
            return re.escape(os.path.sep).join(base + structure)
        return os.path.join(self.root, self.directory_structure.format(**kwargs))


def _full_split(path: str) -> tuple[str, ...]:
    rest, last = os.path.split(path)
    if last == path:
        return (path,)
    if rest == path:
        return (rest,)
    return _full_split(rest) + (last,)


def _literal_assignments(source: str) -> dict[str, dict[str, object]] | None:
    """{section: {trait: value}} of a config made only of literal ``c.Section.trait = value``
    lines (and ``c = get_config()``, docstrings); None for anything else."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return None
    sections: dict[str, dict[str, object]] = {}
    for statement in tree.body:
        if isinstance(statement, ast.Expr) and isinstance(statement.value, ast.Constant):
            continue  # a docstring
        if not isinstance(statement, ast.Assign) or len(statement.targets) != 1:
            return None
        target, value = statement.targets[0], statement.value
        if (isinstance(target, ast.Name) and target.id == "c" and isinstance(value, ast.Call)
                and isinstance(value.func, ast.Name) and value.func.id == "get_config" and not value.args and not value.keywords):
            continue
        if not (isinstance(target, ast.Attribute) and isinstance(target.value, ast.Attribute)
                and isinstance(target.value.value, ast.Name) and target.value.value.id == "c"):
            return None
        try:
            literal = ast.literal_eval(value)
        except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
            return None
        sections.setdefault(target.value.attr, {})[target.attr] = literal
    return sections


def _http_exchange(sections: dict[str, dict[str, object]]) -> tuple[str, str] | None | bool:
    """(service_url, api_token) when the config selects this project's HTTP exchange plugins exactly
    as the hub writes them; None when it selects no other lister; False for anything else."""
    factory = sections.get("ExchangeFactory", {})
    if "list" not in factory:
        return None if "HttpExchange" not in sections else False
    http = sections.get("HttpExchange", {})
    if factory != PLUGIN_CLASSES or http.keys() - {"service_url", "api_token"}:
        return False
    values = (http.get("service_url", ""), http.get("api_token", ""))
    return values if all(isinstance(value, str) for value in values) else False


def _config_from_literals(sections: dict[str, dict[str, object]], root: str) -> CourseConfig | None:
    http_exchange = _http_exchange(sections)
    if _DECIDED_BY_NBGRADER & sections.keys() or http_exchange is False:
        return None
    course = sections.get("CourseDirectory", {})
    exchange = sections.get("Exchange", {})
    if course.keys() - _COURSE_DIRECTORY_READ - _COURSE_DIRECTORY_IGNORED or exchange.keys() - {"root"} - _EXCHANGE_IGNORED:
        return None
    read = {name: course[name] for name in _COURSE_DIRECTORY_READ & course.keys()}
    if "root" in exchange:
        read["exchange_root"] = exchange["root"]
    if not all(isinstance(value, str) for value in read.values()):
        return None  # traitlets would coerce or refuse it
    read.pop("root", None)  # load_course_config pins the root to the course directory
    course_id = read.pop("course_id", "").strip()  # CourseDirectory strips it too
    # nbgrader's default applies only when unset: an empty db_url stays empty (and fails to open).
    db_url = read.pop("db_url") if "db_url" in read else "sqlite:///" + os.path.abspath(os.path.join(root, "gradebook.db"))
    if http_exchange is not None:
        read["exchange_root"] = None
    return CourseConfig(course_id=course_id, root=root, db_url=db_url, http_exchange=http_exchange, **read)


def _config_from_nbgrader(course_dir: Path) -> CourseConfig:
    from nbgrader.coursedir import CourseDirectory

    from grader.grading.nbgrader_api import load_course_config

    config = load_course_config(course_dir)
    coursedir = CourseDirectory(config=config)
    return CourseConfig(
        course_id=coursedir.course_id, root=coursedir.root, db_url=coursedir.db_url,
        directory_structure=coursedir.directory_structure, source_directory=coursedir.source_directory,
        submitted_directory=coursedir.submitted_directory,
        exchange_root=None,  # nbgrader's API lists released assignments, with whatever lister is configured
    )


def read_course_config(course_dir: Path) -> CourseConfig:
    """The course's settings: parsed from a plain literal config, else through nbgrader's loader."""
    course_dir = Path(course_dir).resolve()
    config_file = course_dir / "nbgrader_config.py"
    if not config_file.is_file():
        raise GraderError(f"{config_file}: no nbgrader_config.py; is {course_dir} a course directory?")
    sections = _literal_assignments(config_file.read_text())
    settings = _config_from_literals(sections, str(course_dir)) if sections is not None else None
    return settings if settings is not None else _config_from_nbgrader(course_dir)
