"""The hub's local authenticator: real passwords from :mod:`grader.hub.auth.accounts`.

It uses JupyterHub's own login form. On first start the accounts named in ``initial_users`` are
created with random passwords, printed once on the hub's console and never again. New people get
an account through the sign-up page (:mod:`grader.hub.auth.signup`): with an invitation link, or by
asking and waiting for an admin's approval, as ``signup_mode`` allows. Passwords are changed, reset
through one-time links and names unlocked on the pages of :mod:`grader.hub.auth.passwords`.
"""

from __future__ import annotations

import asyncio
import math
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from functools import partial
from pathlib import Path

from jupyterhub.auth import Authenticator
from tornado import web
from traitlets import Enum, Float, Integer, List, Unicode

from grader.hub.auth.accounts import AccountStore, RateLimiter, new_password

SIGNUP_MODES = ("off", "invitation", "approval")


def until_text(timestamp: float, *, now: float | None = None) -> str:
    """``HH:MM UTC`` (with the date when it is not today), rounded up to the minute, so that
    "try again after" it is always true."""
    moment = datetime.fromtimestamp(math.ceil(timestamp / 60) * 60, tz=timezone.utc)
    today = datetime.fromtimestamp(time.time() if now is None else now, tz=timezone.utc).date()
    return moment.strftime("%H:%M UTC" if moment.date() == today else "%Y-%m-%d %H:%M UTC")


def locked_message(locked_until: float) -> str:
    # The same words for every name, whether or not it has an account (grader.hub.auth.accounts).
    return (f"Too many failed sign-ins for this name. Try again after {until_text(locked_until)}, "
            "or ask the course team for a password reset link.")


class PlatformAuthenticator(Authenticator):
    accounts_db = Unicode(config=True, help="Path of the SQLite file holding the accounts.")
    initial_users = List(Unicode(), config=True, help="Accounts created on first start; passwords printed once.")
    max_failed_logins = Integer(5, config=True, help="Consecutive failures before an account is locked.")
    lockout_seconds = Float(600, config=True, help="How long a locked account stays locked.")
    signup_mode = Enum(
        SIGNUP_MODES, "invitation", config=True,
        help="off: no sign-up page; invitation: only with an invitation link; approval: invitation "
             "links, or anyone may ask for an account, which an admin approves.",
    )
    invitation_hours = Float(72, config=True, help="How long an invitation link made on the admin page stays valid.")
    reset_hours = Float(24, config=True, help="How long a password reset link stays valid.")
    requests_per_address = Integer(
        30, config=True, help="Sign-up and reset requests allowed from one client address per request_window_seconds.")
    requests_per_name = Integer(
        5, config=True, help="Sign-up and reset requests allowed for one user name per request_window_seconds.")
    request_window_seconds = Float(600, config=True, help="The window of requests_per_address and requests_per_name.")
    hash_threads = Integer(
        max(1, min(4, os.cpu_count() or 1)), config=True,
        help="Threads that check passwords. A hash takes a core for ~20 ms; more threads than cores "
             "only make every login in a burst slower.",
    )

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.store = AccountStore(
            Path(self.accounts_db), max_failed_logins=self.max_failed_logins, lockout_seconds=self.lockout_seconds
        )
        # Password hashing runs here, never on the hub's event loop: Argon2id (argon2-cffi) and the
        # scrypt of older hashes release the GIL, so the hub keeps answering while a login is checked.
        self.hash_executor = ThreadPoolExecutor(max_workers=self.hash_threads, thread_name_prefix="password-check")
        self.rate_limiter = RateLimiter(per_address=self.requests_per_address, per_name=self.requests_per_name,
                                        window_seconds=self.request_window_seconds)
        # Shown again in the block printed once the hub runs (grader.hub.lifecycle).
        self.first_start_accounts = self.create_initial_users()

    async def in_hash_thread(self, function, /, *args, **kwargs):
        """Run a blocking account operation (a hash, an SQLite write) off the event loop."""
        return await asyncio.get_running_loop().run_in_executor(self.hash_executor, partial(function, *args, **kwargs))

    def create_initial_users(self) -> dict[str, str]:
        """Create each missing initial account; return {name: password} of those just created."""
        created = {}
        for raw_name in self.initial_users:
            username = self.normalize_username(raw_name)
            if not self.store.exists(username):
                created[username] = new_password()
                self.store.create(username, created[username])
        if created:
            lines = ["", "=" * 64, "First start: these accounts were created. Passwords are shown once."]
            lines += [f"  user: {name:<12} password: {password}" for name, password in created.items()]
            lines += ["=" * 64, ""]
            # stdout, not the log: the log may be shipped elsewhere; this is for the person at the terminal.
            print("\n".join(lines), file=sys.stdout, flush=True)
        return created

    async def authenticate(self, handler, data):
        username = self.normalize_username(data.get("username", ""))
        result = await self.in_hash_thread(self.store.check_login, username, data.get("password", ""))
        if not result.ok:
            self.log.warning("Failed login for %s: %s", username, result.reason)
            if result.locked_until:
                raise web.HTTPError(403, locked_message(result.locked_until))
            if result.password_ok:
                # The right password: saying why it is refused reveals nothing to a guesser.
                # JupyterHub shows this message on the login form.
                raise web.HTTPError(403, f"Your {result.reason}. You can sign in once it is approved.")
            return None
        return username

    def get_handlers(self, app):
        # The pages need the hub's handler classes, imported only here.
        from grader.hub.auth.onboarding import onboarding_handlers
        from grader.hub.auth.passwords import password_handlers
        from grader.hub.auth.signup import signup_handlers

        return [*super().get_handlers(app), *signup_handlers(self), *password_handlers(self),
                *onboarding_handlers(self)]
