"""A real OpenID provider for tests: oidc-provider-mock, run as its own process on loopback.

Independent of the platform's code: the hub talks to it over HTTP as to any identity provider.
People are given as ``name -> IdP groups``; each becomes subject ``<name>-id`` with the claims
``preferred_username``, ``email`` and ``groups``. Their claims can be changed while it runs
(:meth:`Provider.set_groups`, the provider's ``PUT /users/<sub>``), as an IdP admin would.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import requests


def claims(name: str, groups: list[str]) -> dict:
    return {"preferred_username": name, "email": f"{name}@example.org", "groups": groups}


@dataclass
class Provider:
    url: str
    process: subprocess.Popen
    log_path: Path

    def set_groups(self, name: str, groups: list[str]) -> None:
        """Change the person's groups at the IdP (a removal from a group, say)."""
        response = requests.put(f"{self.url}/users/{name}-id", json=claims(name, groups), timeout=10)
        assert response.status_code == 204, response.text

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def start_provider(log_path: Path, people: dict[str, list[str]], *, port: int, require_registration: bool = True,
                   timeout: float = 60) -> Provider:
    """Start the provider on ``127.0.0.1:port`` and wait until its discovery document answers.

    With ``require_registration`` clients must register first (``POST /oauth2/clients``), so their
    secret is checked; without it any client id and secret are accepted."""
    command = [sys.executable, "-m", "oidc_provider_mock", "--port", str(port),
               "--require-registration", "true" if require_registration else "false"]
    for name, groups in people.items():
        command += ["--user-claims", json.dumps({"sub": f"{name}-id", **claims(name, groups)})]
    with open(log_path, "w") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    provider = Provider(url=f"http://127.0.0.1:{port}", process=process, log_path=log_path)
    try:
        deadline = time.monotonic() + timeout
        while True:
            assert process.poll() is None, provider.log()
            try:
                if requests.get(f"{provider.url}/.well-known/openid-configuration", timeout=2).ok:
                    return provider
            except requests.ConnectionError:
                pass
            assert time.monotonic() < deadline, f"provider not up after {timeout}s:\n{provider.log()}"
            time.sleep(0.3)
    except BaseException:
        stop_provider(provider)
        raise


def stop_provider(provider: Provider) -> None:
    """Stop the provider's process group (its own session), by its id."""
    if provider.process.poll() is None:
        try:
            os.killpg(provider.process.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    try:
        provider.process.wait(30)
    except subprocess.TimeoutExpired:
        os.killpg(provider.process.pid, signal.SIGKILL)
        provider.process.wait(30)
