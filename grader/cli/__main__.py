"""``python -m grader.cli ...``: the same as ``grader ...``."""

import sys

from grader.cli.instructor import main

sys.exit(main())
