"""The nbgrader configuration lines that switch nbgrader to the HTTP exchange."""

from __future__ import annotations

# Where the service is and which hub token to call it with, when the configuration does not say.
URL_ENV = "GRADER_EXCHANGE_URL"
TOKEN_ENV = "GRADER_EXCHANGE_TOKEN"

# ExchangeFactory trait -> plugin class, for every exchange operation nbgrader has.
PLUGIN_CLASSES = {
    "exchange": "grader.exchange.plugins.HttpExchange",
    "fetch_assignment": "grader.exchange.plugins.FetchAssignment",
    "fetch_feedback": "grader.exchange.plugins.FetchFeedback",
    "release_assignment": "grader.exchange.plugins.ReleaseAssignment",
    "release_feedback": "grader.exchange.plugins.ReleaseFeedback",
    "list": "grader.exchange.plugins.List",
    "submit": "grader.exchange.plugins.Submit",
    "collect": "grader.exchange.plugins.Collect",
}


def http_exchange_config(service_url: str) -> str:
    """Lines of an ``nbgrader_config.py`` using the HTTP exchange at ``service_url``.

    The token is not written here: inside a user's server or a hub service nbgrader uses
    ``$JUPYTERHUB_API_TOKEN``; an instructor on the command line sets ``$GRADER_EXCHANGE_TOKEN``.
    """
    lines = [f"c.ExchangeFactory.{trait} = {cls!r}" for trait, cls in PLUGIN_CLASSES.items()]
    lines.append(f"c.HttpExchange.service_url = {service_url!r}")
    return "\n".join(lines) + "\n"
