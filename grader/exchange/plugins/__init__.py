"""nbgrader exchange plugins that talk to the exchange service (:mod:`grader.exchange.service`).

Select them in ``nbgrader_config.py`` (the hub writes these lines when ``exchange.backend`` is
``http``; :func:`grader.exchange.plugins.config.http_exchange_config`)::

    c.ExchangeFactory.release_assignment = 'grader.exchange.plugins.ReleaseAssignment'
    ...
    c.HttpExchange.service_url = 'http://127.0.0.1:8011/services/nbgrader-exchange/'

Why: nbgrader's file exchange trusts the student id a student's own configuration claims and a
folder everyone can write, so on one machine (the demo hub: one OS user for everyone) a student can
submit as someone else or read their submission (nbgrader #1097). Over HTTP the hub identifies
the caller from their token and the service decides what they may do.
"""

from importlib import import_module

# Imported on first use, so writing the configuration (grader.exchange.plugins.config) does not load nbgrader.
_CLASSES = {
    "HttpExchange": "base", "Collect": "collect", "FetchAssignment": "fetch", "FetchFeedback": "feedback",
    "List": "listing", "ReleaseAssignment": "release", "ReleaseFeedback": "feedback", "Submit": "submit",
}
__all__ = list(_CLASSES)


def __getattr__(name: str):
    if name in _CLASSES:
        return getattr(import_module(f"grader.exchange.plugins.{_CLASSES[name]}"), name)
    raise AttributeError(f"module 'grader.exchange.plugins' has no attribute {name!r}")
