"""The seats defaults that the command line states in its help and the code applies.

Standard library only: ``grader-admin seats --help`` imports this, not SQLAlchemy or Alembic.
"""

DEFAULT_URL_NAME = "seats.sqlite"  # in the hub's data_dir, when its settings name no URL
URL_ENV = "GRADER_SEATS_DB"  # environment variable naming the seats database URL
DEFAULT_PROFILES = ["cpu"]  # server profiles a cohort includes when none is named
