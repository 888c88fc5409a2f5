"""The hub's local authenticator: real passwords from :mod:`grader.hub.auth.accounts`.

It uses JupyterHub's own login form. On first start the accounts named in ``initial_users`` are
created with random passwords, printed once on the hub's console and never again. New people get
an account through the sign-up page (:mod:`grader.hub.auth.signup`): with an invitation link, or by
asking and waiting for an admin's approval, as ``signup_mode`` allows.
"""

from __future__ import annotations

import asyncio
import os
import sys
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path

from jupyterhub.auth import Authenticator
from tornado import web
from traitlets import Enum, Float, Integer, List, Unicode

from grader.hub.auth.accounts import AccountStore, new_password

SIGNUP_MODES = ("off", "invitation", "approval")


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
        self.create_initial_users()

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
            if result.password_ok:
                # The right password: saying why it is refused reveals nothing to a guesser.
                # JupyterHub shows this message on the login form.
                raise web.HTTPError(403, f"Your {result.reason}. You can sign in once it is approved.")
            return None
        return username

    def get_handlers(self, app):
        from grader.hub.auth.signup import signup_handlers  # the pages need the hub's handler classes

        return [*super().get_handlers(app), *signup_handlers(self)]
