"""Sign-up for local accounts: invitation links, requests an admin approves, and their pages.

- ``/hub/signup``: anyone with an invitation link (``?invite=TOKEN``) creates an active account;
  where the hub's ``accounts.signup`` is ``approval``, anyone may also ask for an account, which
  stays *pending* (it cannot log in, and is told why) until an admin approves it.
- ``/hub/signup/admin``: admins list pending requests, approve or reject them, and make
  invitation links.
- ``grader-admin accounts ...``: the same from the command line, over the plain functions below,
  and password resets and unlocking (:mod:`grader.hub.auth.passwords`).

The page shows only what the hub's mode allows: with ``invitation`` and no link, how to get one
(no form); with ``approval``, the request form and that an admin approves it; with a link, the
form that creates the account. Sign-up posts are rate limited per client address and per name.

The pages use JupyterHub's own templates (``grader/hub/data/templates/`` extends ``page.html``) and
its XSRF protection; passwords go through the same Argon2id store and rules as every account.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path
from urllib.parse import urlencode

from jupyterhub.handlers import BaseHandler
from tornado import web

from grader.hub.auth.accounts import MIN_PASSWORD_LENGTH, PENDING, AccountError, AccountStore
from grader.hub.auth.local import until_text
from grader.hub.auth.passwords import PlatformPage, create_reset_link, unlock_name

INVITATION_HOURS = 72
# The platform YAML's rule for user names (platform.schema.json, $defs.username), plus a length cap.
USERNAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9._@-]{0,63}$")


def invitation_link(*, hub_url: str, token: str) -> str:
    return f"{hub_url.rstrip('/')}/hub/signup?{urlencode({'invite': token})}"


# --- plain functions (the CLI and the admin page use them) -----------------------------------


def pending_signups(*, accounts_db: Path) -> list[str]:
    """Names of accounts waiting for approval."""
    return AccountStore(accounts_db).usernames(status=PENDING)


def approve_signup(*, accounts_db: Path, username: str) -> None:
    AccountStore(accounts_db).approve(username)


def reject_signup(*, accounts_db: Path, username: str) -> None:
    AccountStore(accounts_db).reject(username)


def create_invitation(*, accounts_db: Path, hub_url: str, hours: float = INVITATION_HOURS, note: str = "") -> str:
    """A one-time sign-up link valid for ``hours``; the token is shown only here."""
    token = AccountStore(accounts_db).create_invitation(valid_seconds=hours * 3600, note=note)
    return invitation_link(hub_url=hub_url, token=token)


def check_new_account(*, username: str, password: str, confirm: str) -> str:
    """What is wrong with a sign-up form, or ""."""
    if not USERNAME_PATTERN.match(username):
        return ("A user name is 1 to 64 characters: lower-case letters, digits and . _ @ -, "
                "starting with a letter or digit.")
    if password != confirm:
        return "The two passwords differ."
    if len(password) < MIN_PASSWORD_LENGTH:
        return f"The password must have at least {MIN_PASSWORD_LENGTH} characters."
    return ""


# --- the pages --------------------------------------------------------------------------------


INVITATION_ONLY = "Sign-up on this hub is by invitation: open the link the course team sent you, or ask them for one."


class SignupHandler(PlatformPage):
    """The sign-up form: with an invitation, or as a request for approval."""

    def _mode(self) -> str:
        return self.platform_auth.signup_mode

    async def _page(self, *, status: int = 200, error: str = "", done: str = "", username: str = "",
                    invite: str = "", info: str = "") -> None:
        self.set_status(status)
        # The form is shown only where it can work: with an invitation, or where requests are allowed.
        show_form = not done and not info and bool(invite or self._mode() == "approval")
        html = await self.render_template(
            "signup.html", signup_mode=self._mode(), signup_error=error, signup_done=done, signup_info=info,
            show_form=show_form, username=username, invite=invite, min_password_length=MIN_PASSWORD_LENGTH,
        )
        self.finish(html)

    async def get(self):
        invite = self.get_argument("invite", "")
        if self._mode() == "off":
            raise web.HTTPError(404, "Sign-up is turned off on this hub.")
        if invite:
            problem = await self.platform_auth.in_hash_thread(self.platform_auth.store.invitation_is_open, invite)
            if problem:
                if limited := self.rate_limited("signup"):  # wrong tokens count against the address
                    return await self._page(status=429, error=limited)
                return await self._page(status=400, error=problem[0].upper() + problem[1:] + ".",
                                        info="Ask the course team for a new invitation link.")
        elif self._mode() != "approval":
            return await self._page(info=INVITATION_ONLY)
        await self._page(invite=invite)

    async def post(self):
        if self._mode() == "off":
            raise web.HTTPError(404, "Sign-up is turned off on this hub.")
        invite = self.get_argument("invite", "")
        username = self.platform_auth.normalize_username(self.get_argument("username", "").strip())
        password, confirm = self.get_argument("password", ""), self.get_argument("password_confirm", "")
        problem = check_new_account(username=username, password=password, confirm=confirm)
        if not problem and not self.platform_auth.validate_username(username):
            problem = "This user name is not allowed on this hub."
        if not invite and self._mode() != "approval":
            return await self._page(status=403, info=INVITATION_ONLY)
        if limited := self.rate_limited("signup", username):
            return await self._page(status=429, error=limited, username=username, invite=invite)
        if problem:
            return await self._page(status=400, error=problem, username=username, invite=invite)
        store = self.platform_auth.store
        try:
            if invite:
                await self.platform_auth.in_hash_thread(store.redeem_invitation, invite, username, password)
            else:
                await self.platform_auth.in_hash_thread(store.create, username, password, status=PENDING)
        except AccountError as error:
            message = str(error)
            if "already exists" in message:
                message = "This user name is taken; choose another."
            return await self._page(status=400, error=message[0].upper() + message[1:] + ".",
                                    username=username, invite=invite)
        self.log.info("Sign-up: %s (%s)", username, "invitation" if invite else "awaiting approval")
        done = ("Your account is ready: sign in." if invite
                else "Your request was sent. You can sign in once an admin has approved it.")
        await self._page(done=done, username=username)


class SignupAdminHandler(BaseHandler):
    """For admins: pending requests (approve, reject) and new invitation links."""

    def initialize(self, authenticator):
        self.platform_auth = authenticator

    def _require_admin(self):
        if not self.current_user.admin:
            raise web.HTTPError(403, "Only admins manage sign-ups.")

    async def _page(self, *, message: str = "", link: str = "", status: int = 200) -> None:
        self._require_admin()
        self.set_status(status)
        store = self.platform_auth.store
        pending = await self.platform_auth.in_hash_thread(store.usernames, status=PENDING)
        html = await self.render_template(
            "signup_admin.html", pending=pending, admin_message=message, invitation=link,
            invitation_hours=self.platform_auth.invitation_hours, signup_mode=self.platform_auth.signup_mode,
        )
        self.finish(html)

    @web.authenticated
    async def get(self):
        await self._page()

    @web.authenticated
    async def post(self):
        self._require_admin()
        store = self.platform_auth.store
        action, username = self.get_argument("action", ""), self.get_argument("username", "")
        try:
            if action == "approve":
                await self.platform_auth.in_hash_thread(store.approve, username)
                return await self._page(message=f"Approved {username}: they can sign in now.")
            if action == "reject":
                await self.platform_auth.in_hash_thread(store.reject, username)
                return await self._page(message=f"Rejected {username}.")
            if action == "invite":
                token = await self.platform_auth.in_hash_thread(
                    store.create_invitation, valid_seconds=self.platform_auth.invitation_hours * 3600,
                    note=self.get_argument("note", ""))
                hub_url = f"{self.request.protocol}://{self.request.host}"
                return await self._page(link=invitation_link(hub_url=hub_url, token=token))
        except AccountError as error:
            return await self._page(message=str(error), status=400)
        raise web.HTTPError(400, f"unknown action {action!r}")


def signup_handlers(authenticator) -> list[tuple]:
    """Tornado routes (under the hub's prefix) for :meth:`PlatformAuthenticator.get_handlers`."""
    if authenticator.signup_mode == "off":
        return [(r"/signup/admin", SignupAdminHandler, {"authenticator": authenticator})]
    return [
        (r"/signup", SignupHandler, {"authenticator": authenticator}),
        (r"/signup/admin", SignupAdminHandler, {"authenticator": authenticator}),
    ]


# --- `grader-admin accounts ...` ---------------------------------------------------------------------


def _hub_defaults() -> tuple[Path, str, float]:
    from grader.hub.settings import load_settings  # settings read only when the command runs

    settings = load_settings()
    return settings.data_dir / "accounts.sqlite", f"http://{settings.ip}:{settings.port}", settings.reset_hours


def accounts_command(args: argparse.Namespace) -> int:
    """Run ``grader-admin accounts ...`` as parsed by :mod:`grader.cli.accounts_parser`."""
    accounts_db, hub_url, reset_hours = _hub_defaults()
    accounts_db = args.accounts_db or accounts_db
    try:
        if args.accounts_verb == "pending":
            names = pending_signups(accounts_db=accounts_db)
            print("\n".join(names) if names else "no sign-up waiting for approval")
        elif args.accounts_verb == "approve":
            approve_signup(accounts_db=accounts_db, username=args.username)
            print(f"approved {args.username}: they can sign in now")
        elif args.accounts_verb == "reject":
            reject_signup(accounts_db=accounts_db, username=args.username)
            print(f"rejected {args.username}")
        elif args.accounts_verb == "invite":
            link = create_invitation(accounts_db=accounts_db, hub_url=args.hub_url or hub_url, hours=args.hours,
                                     note=args.note)
            print(f"one-time sign-up link, valid {args.hours:g} hours (shown once):\n{link}")
        elif args.accounts_verb == "reset":
            hours = args.hours if args.hours is not None else reset_hours
            link = create_reset_link(accounts_db=accounts_db, hub_url=args.hub_url or hub_url, username=args.username,
                                     hours=hours, created_by="command line")
            print(f"one-time password reset link for {args.username}, valid {hours:g} hours (shown once; "
                  f"it replaces any earlier one):\n{link}")
        elif args.accounts_verb == "unlock":
            if unlock_name(accounts_db=accounts_db, username=args.username):
                print(f"unlocked {args.username}")
            else:
                print(f"{args.username} was not locked and had no failed logins")
        elif args.accounts_verb == "locked":
            locked = AccountStore(accounts_db).locked()
            print("\n".join(f"{name}\tuntil {until_text(until)}" for name, until in locked) if locked
                  else "no name is locked")
    except AccountError as error:
        print(f"grader: {error}", file=sys.stderr)
        return 2
    return 0
