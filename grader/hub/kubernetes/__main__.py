"""``python -m grader.hub.kubernetes values|image-tag``: see :mod:`grader.hub.kubernetes.values`."""

from grader.hub.kubernetes.values import main

raise SystemExit(main())
