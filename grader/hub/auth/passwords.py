"""Passwords of local accounts after sign-up: change, reset through a one-time link, unlock.

- ``/hub/password``: a signed-in user changes their password; the current one is checked like a
  login (a wrong one counts towards the name's lockout). Their other sessions are signed out.
- ``/hub/password/reset?token=...``: whoever holds a reset link sets a new password, once, before
  it expires; the name's lock is cleared and every session of the account is signed out.
- ``/hub/accounts``: reset links, made by an admin for anyone, or by an instructor for the
  students of their own courses (the hub's ``groups!group=nbgrader-<course>`` scope, which
  :mod:`grader.hub.roles` gives to ``instructor-<course>``), and, for admins, the locked names
  with an Unlock button.
- ``grader-admin accounts reset|unlock|locked``: the same from the command line
  (:func:`grader.hub.auth.signup.accounts_command`), over the plain functions below.

Sign-up and reset requests are rate limited per client address and per name
(:class:`grader.hub.auth.accounts.RateLimiter`): a refusal is a 429 page with the time to retry.
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from urllib.parse import urlencode

from jupyterhub import orm
from jupyterhub.handlers import BaseHandler
from jupyterhub.utils import new_token
from tornado import web

from grader.hub.auth.accounts import MIN_PASSWORD_LENGTH, AccountError, AccountStore
from grader.hub.auth.local import locked_message, until_text

RESET_HOURS = 24
STUDENT_GROUP_PREFIX = "nbgrader-"  # grader.hub.settings.CourseSettings.student_group


def reset_link(*, hub_url: str, token: str) -> str:
    return f"{hub_url.rstrip('/')}/hub/password/reset?{urlencode({'token': token})}"


# --- plain functions (the CLI uses them) -------------------------------------------------------


def create_reset_link(*, accounts_db: Path, hub_url: str, username: str, hours: float = RESET_HOURS,
                      created_by: str = "") -> str:
    """A one-time link that sets ``username``'s password, valid for ``hours``; shown only here."""
    token = AccountStore(accounts_db).create_reset(username, valid_seconds=hours * 3600, created_by=created_by)
    return reset_link(hub_url=hub_url, token=token)


def unlock_name(*, accounts_db: Path, username: str) -> bool:
    """Clear a name's failed logins and lock; False when it had none."""
    return AccountStore(accounts_db).unlock(username)


def check_new_password(password: str, confirm: str) -> str:
    """What is wrong with a new password and its repetition, or ""."""
    if password != confirm:
        return "The two new passwords differ."
    if len(password) < MIN_PASSWORD_LENGTH:
        return f"The password must have at least {MIN_PASSWORD_LENGTH} characters."
    return ""


def _sentence(message: str) -> str:
    return message[0].upper() + message[1:] + ("" if message.endswith(".") else ".")


# --- shared by the pages -----------------------------------------------------------------------


class PlatformPage(BaseHandler):
    """A page of the local accounts: the authenticator, the client's address, rate limits."""

    def initialize(self, authenticator):
        self.platform_auth = authenticator

    def set_default_headers(self):
        super().set_default_headers()
        # Links carry one-time tokens in their query: never hand them to another site.
        self.set_header("Referrer-Policy", "no-referrer")

    def client_address(self) -> str:
        # JupyterHub's server trusts X-Forwarded-For from its proxy (tornado's xheaders): the
        # last hop's address, i.e. the client as the proxy saw it.
        return self.request.remote_ip or ""

    def rate_limited(self, kind: str, name: str = "") -> str:
        """Record one request of ``kind``; "" when allowed, else the message to show (status 429 set)."""
        until = self.platform_auth.rate_limiter.hit(kind, address=self.client_address(), name=name)
        if not until:
            return ""
        self.log.warning("Rate limit: %s from %s for %r", kind, self.client_address(), name)
        self.set_status(429)
        self.set_header("Retry-After", str(max(1, math.ceil(until - time.time()))))
        return f"Too many requests; try again after {until_text(until)}."

    async def in_thread(self, function, /, *args, **kwargs):
        return await self.platform_auth.in_hash_thread(function, *args, **kwargs)

    def sign_out_everywhere(self, username: str) -> None:
        """Invalidate every login cookie of ``username`` (JupyterHub finds a session by its cookie id)."""
        orm_user = orm.User.find(self.db, username)
        if orm_user is not None:
            orm_user.cookie_id = new_token()
            self.db.commit()


# --- change ------------------------------------------------------------------------------------


class PasswordChangeHandler(PlatformPage):
    """``/hub/password``: the signed-in user's own password."""

    async def _page(self, *, status: int = 200, error: str = "", done: str = "") -> None:
        self.set_status(status)
        self.finish(await self.render_template(
            "password.html", password_page="change", password_error=error, password_done=done,
            account=self.current_user.name, token="", min_password_length=MIN_PASSWORD_LENGTH))

    @web.authenticated
    async def get(self):
        await self._page()

    @web.authenticated
    async def post(self):
        user = self.current_user
        current = self.get_argument("current_password", "")
        new, confirm = self.get_argument("password", ""), self.get_argument("password_confirm", "")
        if problem := check_new_password(new, confirm):
            return await self._page(status=400, error=problem)
        if new == current:
            return await self._page(status=400, error="The new password is the current one.")
        store = self.platform_auth.store
        try:
            result = await self.in_thread(store.change_password, user.name, current, new)
        except AccountError as error:
            return await self._page(status=400, error=_sentence(str(error)))
        if result.locked_until:
            return await self._page(status=403, error=locked_message(result.locked_until))
        if not result.ok:
            return await self._page(status=403, error="The current password is wrong.")
        self.log.info("Password changed by %s", user.name)
        self.sign_out_everywhere(user.name)
        self.set_login_cookie(user)  # this session stays signed in, with the new cookie id
        await self._page(done="Your password is changed. Your other sessions were signed out.")


# --- reset -------------------------------------------------------------------------------------


class PasswordResetHandler(PlatformPage):
    """``/hub/password/reset?token=...``: a new password with a one-time link."""

    async def _page(self, *, status: int = 200, error: str = "", done: str = "", account: str = "",
                    token: str = "") -> None:
        self.set_status(status)
        self.finish(await self.render_template(
            "password.html", password_page="reset", password_error=error, password_done=done,
            account=account, token=token, min_password_length=MIN_PASSWORD_LENGTH))

    async def get(self):
        token = self.get_argument("token", "")
        try:
            username = await self.in_thread(self.platform_auth.store.reset_user, token)
        except AccountError as error:
            # A wrong token counts against the client's address: guessing is slowed down too.
            if limited := self.rate_limited("reset"):
                return await self._page(status=429, error=limited)
            return await self._page(status=400, error=_sentence(str(error)))
        await self._page(account=username, token=token)

    async def post(self):
        token = self.get_argument("token", "")
        store = self.platform_auth.store
        try:
            username = await self.in_thread(store.reset_user, token)
        except AccountError as error:
            if limited := self.rate_limited("reset"):
                return await self._page(status=429, error=limited)
            return await self._page(status=400, error=_sentence(str(error)))
        if limited := self.rate_limited("reset", username):
            return await self._page(status=429, error=limited, account=username, token=token)
        new, confirm = self.get_argument("password", ""), self.get_argument("password_confirm", "")
        if problem := check_new_password(new, confirm):
            return await self._page(status=400, error=problem, account=username, token=token)
        try:
            await self.in_thread(store.redeem_reset, token, new)
        except AccountError as error:
            return await self._page(status=400, error=_sentence(str(error)), account=username, token=token)
        self.log.info("Password reset with a link for %s", username)
        self.sign_out_everywhere(username)
        await self._page(done="Your password is set: sign in with it.", account=username)


# --- reset links and unlock, for admins and instructors ---------------------------------------


def _privileges_of_a_student_only(target) -> bool:
    """No admin, no role of their own but JupyterHub's ``user``, no role through a group that the
    course groups (``nbgrader-<course>``) do not give: an instructor must not take over a
    colleague's account (a grader elsewhere, a cohort admin) through a course they both sit in."""
    if target.admin or any(role.name != "user" for role in target.orm_user.roles):
        return False
    student_roles = {role.name for group in target.groups if group.name.startswith(STUDENT_GROUP_PREFIX)
                     for role in group.roles}
    return all(role.name in student_roles for group in target.groups for role in group.roles)


class AccountsAdminHandler(PlatformPage):
    """``/hub/accounts``: reset links (admins: anyone; instructors: their students) and unlocking (admins)."""

    def managed_groups(self) -> list:
        """The student groups whose members the current user manages (``groups!group=...``)."""
        groups = self.db.query(orm.Group).filter(orm.Group.name.startswith(STUDENT_GROUP_PREFIX))
        return [group for group in groups.order_by(orm.Group.name)
                if self.has_scope(f"groups!group={group.name}")]

    def may_reset(self, username: str) -> bool:
        me = self.current_user
        if me.admin:
            return True
        target = self.find_user(username)
        if target is None or target.name == me.name or not _privileges_of_a_student_only(target):
            return False
        return any(group.name.startswith(STUDENT_GROUP_PREFIX) and self.has_scope(f"groups!group={group.name}")
                   for group in target.groups)

    def _require_access(self) -> None:
        if not (self.current_user.admin or self.managed_groups()):
            raise web.HTTPError(403, "Only admins and instructors manage accounts.")

    async def _page(self, *, message: str = "", link: str = "", link_for: str = "", status: int = 200) -> None:
        self._require_access()
        self.set_status(status)
        me = self.current_user
        courses = []
        for group in self.managed_groups():
            students = sorted(user.name for user in group.users)
            students = [name for name in students if self.may_reset(name)]
            courses.append((group.name[len(STUDENT_GROUP_PREFIX):], students))
        locked = []
        if me.admin:
            locked = [(name, until_text(until)) for name, until in
                      await self.in_thread(self.platform_auth.store.locked)]
        self.finish(await self.render_template(
            "accounts_admin.html", is_admin=me.admin, courses=courses, locked=locked, admin_message=message,
            reset_link=link, reset_for=link_for, reset_hours=self.platform_auth.reset_hours))

    @web.authenticated
    async def get(self):
        await self._page()

    @web.authenticated
    async def post(self):
        self._require_access()
        action = self.get_argument("action", "")
        username = self.platform_auth.normalize_username(self.get_argument("username", "").strip())
        store = self.platform_auth.store
        if action == "reset":
            if not self.may_reset(username):
                return await self._page(status=403, message=f"You may not reset the password of {username!r}: "
                                        "instructors reset their own courses' students only.")
            if limited := self.rate_limited("reset-link", username):
                return await self._page(status=429, message=limited)
            try:
                token = await self.in_thread(store.create_reset, username,
                                             valid_seconds=self.platform_auth.reset_hours * 3600,
                                             created_by=self.current_user.name)
            except AccountError as error:
                return await self._page(status=400, message=_sentence(str(error)))
            self.log.info("Password reset link for %s made by %s", username, self.current_user.name)
            hub_url = f"{self.request.protocol}://{self.request.host}"
            return await self._page(link=reset_link(hub_url=hub_url, token=token), link_for=username)
        if action == "unlock":
            if not self.current_user.admin:
                raise web.HTTPError(403, "Only admins unlock names.")
            unlocked = await self.in_thread(store.unlock, username)
            self.log.info("%s unlocked by %s", username, self.current_user.name)
            return await self._page(message=f"Unlocked {username}." if unlocked else f"{username} was not locked.")
        raise web.HTTPError(400, f"unknown action {action!r}")


def password_handlers(authenticator) -> list[tuple]:
    """Tornado routes (under the hub's prefix) for :meth:`PlatformAuthenticator.get_handlers`."""
    extra = {"authenticator": authenticator}
    return [
        (r"/password", PasswordChangeHandler, extra),
        (r"/password/reset", PasswordResetHandler, extra),
        (r"/accounts", AccountsAdminHandler, extra),
    ]
