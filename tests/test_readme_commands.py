"""Every shell command README.md shows works as printed, with no virtual environment activated.

The commands are read from README.md's code blocks (indented or fenced). Each one must match a
rule below: run as printed (in the repository root, with ``PATH`` holding neither ``.venv/bin`` nor
``node_modules/.bin``, settings and data in a temporary folder); run with ``--help`` appended,
which checks the program, its verb and the options before it parse, where running it needs a
live hub or course; or named as not runnable here, with the reason. A command no rule matches
fails the test, so a new command in the README gets a rule, and so a check.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from grader.resources import HUB_CONFIG_DIR, REPO_ROOT

README = REPO_ROOT / "README.md"
VENV_BIN = Path(sys.executable).parent
# Words a README code block's command starts with; any other block is YAML, Python, a URL or a listing.
PROGRAMS = {"make", "pip", "mkdir", "printf", "jupyterhub", "export", "curl", "apt-get", "kubectl", "helm",
            "systemctl", "setcap", "bash", "python", "python3", "cd", "npm"}

RUN, HELP, SKIP = "run", "help", "skip"
# (pattern on the whole command, what to do, why). The first match wins.
RULES: list[tuple[str, str, str]] = [
    (r"make hub\b", SKIP, "long-running: serves the hub until stopped (tests/hub/test_hub.py starts the same config)"),
    (r"make test\b", SKIP, "the whole test suite, this test included"),
    (r"pip install ", SKIP, "installs from the package index (tests/integration/test_wheel.py installs the built wheel)"),
    (r"(mkdir|printf|cd) ", SKIP, "the installed-wheel recipe; tests/integration/test_wheel.py does the same steps"),
    (r"jupyterhub -f ", SKIP, "long-running hub from an installed wheel (tests/integration/test_wheel.py)"),
    (r"(apt-get|systemctl|setcap) ", SKIP, "changes the machine's packages or services (root, network)"),
    (r"(kubectl|helm) ", SKIP, "needs a Kubernetes cluster"),
    (r"curl ", SKIP, "needs a running hub with seats enabled and an API token ($TOKEN)"),
    (r"export GRADER_COURSE_DIR=", SKIP, "a shell assignment for the commands after it"),
    (r"\.venv/bin/grader-admin course add ", RUN, ""),
    (r"\.venv/bin/python benchmarks/\w+\.py$", HELP,
     "runs for minutes (tests/benchmarks' tiny-size run: test_the_autograde_benchmark_runs_as_printed)"),
    (r"\.venv/bin/grader(-admin)? ", HELP, "needs a running hub's course directory, exchange or seats database"),
]


def readme_commands(text: str) -> list[str]:
    """The shell commands of the README's code blocks: comments dropped, continuation lines joined."""
    blocks, current, in_fence = [], [], False
    previous_blank = True
    for line in text.splitlines():
        if line.strip().startswith("```"):
            if in_fence:
                blocks.append(current)
                current = []
            in_fence = not in_fence
            continue
        if in_fence:
            current.append(line)
        elif line.startswith("    ") and (current or previous_blank):
            current.append(line[4:])
        elif line.strip() and current:
            blocks.append(current)
            current = []
        previous_blank = not line.strip()
    if current:
        blocks.append(current)
    commands = []
    for block in blocks:
        joined = "\n".join(block).replace("\\\n", " ")
        for line in joined.splitlines():
            command = _without_comment(line).strip()
            if not command:
                continue
            first = command.split()[0]
            if first in PROGRAMS or first.startswith(".venv/bin/"):
                commands.append(" ".join(command.split()))
    return commands


def _without_comment(line: str) -> str:
    """The line up to a ``#`` that starts a shell comment: at the start or after a space, outside quotes."""
    quote = None
    for index, char in enumerate(line):
        if quote:
            quote = None if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char == "#" and (index == 0 or line[index - 1].isspace()):
            return line[:index]
    return line


def rule_for(command: str) -> tuple[str, str]:
    for pattern, action, reason in RULES:
        if re.match(pattern, command):
            return action, reason
    raise AssertionError(f"README.md shows {command!r}, which no rule of {__file__} checks: add one")


def environment(tmp_path: Path) -> dict[str, str]:
    """As a newcomer's shell: no venv on PATH (nor node_modules), settings and data kept aside."""
    hidden = {str(VENV_BIN), str(REPO_ROOT / ".venv" / "bin"), str(REPO_ROOT / "node_modules" / ".bin")}
    path = [entry for entry in os.environ.get("PATH", "").split(os.pathsep) if entry and entry not in hidden]
    config = tmp_path / "platform.yaml"
    if not config.exists():
        shutil.copy(HUB_CONFIG_DIR / "platform.yaml", config)
    env = {key: value for key, value in os.environ.items() if not key.startswith(("AICOURSE_", "GRADER_", "VIRTUAL_ENV"))}
    env.update(PATH=os.pathsep.join(path), AICOURSE_CONFIG=str(config), AICOURSE_DATA_DIR=str(tmp_path / "data"),
               GRADER_SEATS_DB=f"sqlite:///{tmp_path / 'seats.sqlite'}")
    return env


COMMANDS = readme_commands(README.read_text())


def test_the_readme_shows_commands_and_each_has_a_rule():
    assert any(command.startswith(".venv/bin/grader ") for command in COMMANDS), COMMANDS
    assert "make hub" in COMMANDS
    for command in COMMANDS:
        rule_for(command)


def test_the_command_reader_finds_commands_only_in_shell_blocks():
    text = ("Intro:\n\n    make hub     # serves it\n    .venv/bin/grader status --json\n\nYAML:\n\n"
            "    https:\n      enabled: true\n\n```\ncurl -d '{\"a\": 1}' \\\n  http://h/x  # posts\n```\n")
    assert readme_commands(text) == ["make hub", ".venv/bin/grader status --json", "curl -d '{\"a\": 1}' http://h/x"]


def _checked_here(command: str) -> bool:
    try:
        return rule_for(command)[0] != SKIP
    except AssertionError:
        return True  # fails in the test, with the message, rather than at collection


@pytest.mark.parametrize("command", [c for c in COMMANDS if _checked_here(c)])
def test_each_readme_command_works_as_printed(command, tmp_path):
    action, _ = rule_for(command)
    argv = shlex.split(command) + (["--help"] if action == HELP else [])
    env = environment(tmp_path)
    assert shutil.which("alembic", path=env["PATH"]) is None or str(VENV_BIN) not in env["PATH"]
    done = subprocess.run(argv, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, f"{command}: exit {done.returncode}\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}"
    if action == HELP:
        assert "usage:" in done.stdout.lower(), done.stdout[-2000:]


def test_course_add_changes_only_the_settings_file_it_is_given(tmp_path):
    """The README's `grader-admin course add` writes the YAML in AICOURSE_CONFIG, not the checkout's."""
    command = next(c for c in COMMANDS if c.startswith(".venv/bin/grader-admin course add "))
    before = (HUB_CONFIG_DIR / "platform.yaml").read_text()
    env = environment(tmp_path)
    done = subprocess.run(shlex.split(command), cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "ml201" in Path(env["AICOURSE_CONFIG"]).read_text()
    assert (HUB_CONFIG_DIR / "platform.yaml").read_text() == before


@pytest.mark.slow
def test_the_autograde_benchmark_runs_as_printed_at_a_tiny_size(tmp_path):
    """`.venv/bin/python benchmarks/autograde.py` without the venv on PATH: nbgrader runs `alembic`
    as a program, found through the interpreter's own bin folder (grader.grading.nbgrader_api)."""
    command = next(c for c in COMMANDS if c.startswith(".venv/bin/python benchmarks/autograde.py"))
    argv = shlex.split(command) + ["--submissions", "2", "--workers", "1", "--workdir", str(tmp_path / "work")]
    done = subprocess.run(argv, cwd=REPO_ROOT, env=environment(tmp_path), capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, f"exit {done.returncode}\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}"
    assert "alembic" not in done.stderr
