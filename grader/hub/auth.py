"""The hub's local authenticator: real passwords from :mod:`grader.hub.accounts`.

It uses JupyterHub's own login form. On first start the accounts named in ``initial_users`` are
created with random passwords, printed once on the hub's console and never again.
"""

from __future__ import annotations

import sys
from pathlib import Path

from jupyterhub.auth import Authenticator
from traitlets import Float, Integer, List, Unicode

from grader.hub.accounts import AccountStore, new_password


class PlatformAuthenticator(Authenticator):
    accounts_db = Unicode(config=True, help="Path of the SQLite file holding the accounts.")
    initial_users = List(Unicode(), config=True, help="Accounts created on first start; passwords printed once.")
    max_failed_logins = Integer(5, config=True, help="Consecutive failures before an account is locked.")
    lockout_seconds = Float(600, config=True, help="How long a locked account stays locked.")

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.store = AccountStore(
            Path(self.accounts_db), max_failed_logins=self.max_failed_logins, lockout_seconds=self.lockout_seconds
        )
        self.create_initial_users()

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
        result = self.store.check_login(username, data.get("password", ""))
        if not result.ok:
            self.log.warning("Failed login for %s: %s", username, result.reason)
            return None
        return username
