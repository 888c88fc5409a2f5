"""The nbgrader exchange as a hub service: files live in the service's storage, identity comes from the hub.

nbgrader's default exchange is a shared folder: a student's submission is named after the student
id the *student's own* configuration claims, and anyone who can write the folder can write anyone's
name (nbgrader #1097). This service is reached over HTTP with the caller's hub token; the hub says
who the caller is and which course groups they are in, so a student submits only as themselves and
never reads another student's work or feedback. See :mod:`grader.exchange.service.handlers` for the
API and :mod:`grader.exchange.service.access` for who may do what.
"""

# The hub service's name: its URL prefix is /services/nbgrader-exchange/ (course ids cannot
# contain '-', so it never collides with a course's formgrader service).
SERVICE_NAME = "nbgrader-exchange"
