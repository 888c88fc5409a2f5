"""The AI course platform: a JupyterHub for the course, and grading with nbgrader.

- :mod:`grader.grading`  the instructor's verbs (release, collect, autograde, feedback...), the
  sandboxed executor and the integrity checks
- :mod:`grader.exchange` the HTTP nbgrader exchange: plugins in users' servers, the hub service
- :mod:`grader.hub`      the hub: settings, authentication, spawning, services, Kubernetes
- :mod:`grader.seats`    enterprise seats: cohorts, usage and billing reports, learner progress
- :mod:`grader.cli`      the command lines over all of them: ``grader`` (instructors), ``grader-admin``

docs/architecture.md draws which may import which.
"""

__version__ = "0.1.0"
