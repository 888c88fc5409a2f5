"""Local accounts with real (bcrypt-hashed) passwords, on top of NativeAuthenticator.

The only addition is the first-start bootstrap: the instructor and student accounts named in the
settings are created with random passwords, printed once on the hub's console, and never again.
"""

from __future__ import annotations

import secrets
import sys

import bcrypt
from nativeauthenticator import NativeAuthenticator
from nativeauthenticator.orm import UserInfo
from traitlets import List, Unicode


def new_password() -> str:
    # 16 URL-safe characters: about 96 bits, and easy to copy from a terminal.
    return secrets.token_urlsafe(12)


class PlatformAuthenticator(NativeAuthenticator):
    initial_users = List(
        Unicode(),
        config=True,
        help="Accounts created on first start with a random password printed once.",
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.create_initial_users()

    def create_initial_users(self) -> dict[str, str]:
        """Create each missing initial account; return {name: password} of those just created."""
        created = {}
        for raw_name in self.initial_users:
            username = self.normalize_username(raw_name)
            if self.user_exists(username):
                continue
            password = new_password()
            hashed = bcrypt.hashpw(password.encode(), bcrypt.gensalt())
            self.db.add(UserInfo(username=username, password=hashed, is_authorized=True))
            created[username] = password
        if created:
            self.db.commit()
            self._announce(created)
        return created

    def _announce(self, created: dict[str, str]) -> None:
        lines = ["", "=" * 64, "First start: these accounts were created. Passwords are shown once."]
        lines += [f"  user: {name:<12} password: {password}" for name, password in created.items()]
        lines += ["=" * 64, ""]
        # stdout, not the log: the log may be shipped elsewhere, and this is for the person at the terminal.
        print("\n".join(lines), file=sys.stdout, flush=True)
