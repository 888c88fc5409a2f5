"""Where the repository's content lives, so code never guesses relative to the working directory."""

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
COURSES_DIR = REPO_ROOT / "courses"
ASSIGNMENTS_SOURCE_DIR = REPO_ROOT / "assignments" / "source"
HUB_CONFIG_DIR = REPO_ROOT / "hub_config"
