"""Which authenticator the hub runs, and its settings: local accounts, OIDC or LTI 1.3 (one machine and Kubernetes)."""

from __future__ import annotations

from grader.hub.auth.oidc import update_oidc_auth
from grader.hub.settings import HubSettings
from grader.resources import TEMPLATES_DIR


def update_auth(c, settings: HubSettings) -> None:
    """Local accounts with sign-up (grader.hub.auth.local, grader.hub.auth.signup), or OIDC single sign-on (grader.hub.auth.oidc)."""
    if settings.auth.type == "oidc":
        update_oidc_auth(c, settings.auth)
        return
    if settings.auth.type == "lti13":  # launches from LMSs (grader.hub.auth.lti13, docs/lms-lti13.md)
        from grader.hub.auth.lti13 import update_lti13_auth
        update_lti13_auth(c, lti=settings.auth.lti13, data_dir=settings.data_dir,
                          course_ids=[course.course_id for course in settings.courses],
                          lessons_dir=settings.lessons_dir, assignments_dir=settings.assignments_source_dir)
        return
    c.JupyterHub.authenticator_class = "grader.hub.auth.local.PlatformAuthenticator"
    # The sign-up and password pages, and the login page with links to them (extends JupyterHub's own).
    c.JupyterHub.template_paths = [str(TEMPLATES_DIR)]
    # The nav bar links the password and accounts pages (templates/page.html); on one machine
    # grader/hub/config.py sets the same variable again with its own.
    template_vars = c.JupyterHub.template_vars if "template_vars" in c.JupyterHub else {}
    c.JupyterHub.template_vars = {**template_vars, "aicourse_local_accounts": True}
    c.PlatformAuthenticator.signup_mode = settings.signup
    c.PlatformAuthenticator.invitation_hours = settings.invitation_hours
    c.PlatformAuthenticator.accounts_db = str(settings.data_dir / "accounts.sqlite")
    c.PlatformAuthenticator.initial_users = settings.users()
    c.PlatformAuthenticator.max_failed_logins = settings.allowed_failed_logins
    c.PlatformAuthenticator.lockout_seconds = settings.lockout_seconds
    c.PlatformAuthenticator.reset_hours = settings.reset_hours
    c.PlatformAuthenticator.requests_per_address = settings.requests_per_address
    c.PlatformAuthenticator.requests_per_name = settings.requests_per_name
    c.PlatformAuthenticator.request_window_seconds = settings.request_window_seconds
    # Only accounts in the platform's account store can authenticate at all, so every user who
    # authenticates may use the hub.
    c.Authenticator.allow_all = True
