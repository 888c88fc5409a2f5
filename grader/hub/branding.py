"""The platform's title and logo on the login page and the hub's pages (templates/login.html,
page.html), set the same way on one machine (grader.hub.config) and in the hub pod
(grader.hub.kubernetes.values, where the logo is the copy ``hub.extraFiles`` mounts)."""

from __future__ import annotations

from grader.hub.layers import ConfigError
from grader.hub.settings import HubSettings


def update_branding(c, settings: HubSettings, *, missing_logo_hint: str = "") -> None:
    logo = settings.branding.logo
    if logo is not None:
        if not logo.is_file():
            raise ConfigError(f"branding.logo: {logo} is not a file{missing_logo_hint}")
        c.JupyterHub.logo_file = str(logo)
    template_vars = c.JupyterHub.template_vars if "template_vars" in c.JupyterHub else {}
    c.JupyterHub.template_vars = {**template_vars, "aicourse_title": settings.branding.title,
                                  "aicourse_logo": logo is not None}
