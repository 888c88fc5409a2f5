"""HTTPS on one machine: Caddy in front of the hub, as The Littlest JupyterHub puts Traefik in front of its own.

With ``https: {enabled: true, ...}`` in the platform YAML the hub stays on loopback (plain HTTP on
``ip:port``) and Caddy, Debian's ``caddy`` package, listens on ``https.address``: HTTPS on
``https.port``, with the given certificate and key or with a certificate it obtains and renews
from Let's Encrypt for ``https.domain``; plain HTTP on ``https.http_port`` only redirects (and
answers Let's Encrypt's HTTP-01 challenge). Responses carry ``Strict-Transport-Security``.

Caddy runs as a JupyterHub *managed service* (no URL, so no route): the hub starts it with its
other services, stops it when the hub stops, and starts it again if it exits. That ties the front's
life to the hub's on any machine, systemd or not, and leaves no second daemon to install, enable
or forget. Anything Caddy keeps (certificates from Let's Encrypt, its account, its autosaved
config) stays in ``<data_dir>/tls-front/``; its admin endpoint is off, so nothing else listens.

At hub start :func:`prepare_front` checks what would otherwise only show up as a service that
keeps exiting (caddy missing, unreadable files, ports taken or not allowed) and has Caddy validate
the file it writes, so the hub refuses to start with the key and the file at fault. A front that a
killed hub left running (services run in sessions of their own) is stopped first, found by its
pid file and the Caddyfile on its command line.
"""

from __future__ import annotations

import errno
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import psutil

from grader.hub.layers import ConfigError
from grader.hub.settings import HubSettings, config_path

SERVICE_NAME = "tls-front"
FRONT_DIR_NAME = "tls-front"
CADDYFILE_NAME = "Caddyfile"
PID_FILE_NAME = "caddy.pid"
# Debian's package puts it on PATH; the hub resolves it once, at start.
CADDY = "caddy"
# The kernel's lowest port an unprivileged process may listen on (1024 unless lowered).
UNPRIVILEGED_PORT_START = Path("/proc/sys/net/ipv4/ip_unprivileged_port_start")
VALIDATE_TIMEOUT = 60
STALE_FRONT_GRACE = 10


def front_dir(settings: HubSettings) -> Path:
    """Caddy's folder: the Caddyfile the hub writes, and Caddy's own state (HOME, XDG folders, storage)."""
    return settings.data_dir / FRONT_DIR_NAME


def caddyfile_path(settings: HubSettings) -> Path:
    return front_dir(settings) / CADDYFILE_NAME


def caddy_binary() -> str:
    return shutil.which(CADDY) or CADDY


def _quoted(key: str, value: str) -> str:
    """One Caddyfile token. Quoted, so paths with spaces work; braces would read as placeholders."""
    if any(char in value for char in '"{}\n\\'):
        raise ConfigError(f"{config_path()}: {key}: {value!r}: the TLS front's Caddyfile cannot hold quotes, "
                          "braces or backslashes")
    return f'"{value}"'


def _host_port(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def upstream(settings: HubSettings) -> str:
    """Where Caddy sends requests: the hub's own proxy, on loopback."""
    return _host_port(settings.ip, settings.port)


def render_caddyfile(settings: HubSettings) -> str:
    """The Caddyfile for the settings' ``https`` block; pure, so it can be shown and tested."""
    https = settings.https
    state = front_dir(settings)
    port_suffix = "" if https.port == 443 else f":{https.port}"
    # Without a domain the redirect keeps the name the browser used.
    redirect_to = f"https://{https.domain or '{host}'}{port_suffix}{{uri}}"
    bind = [f"\tbind {https.address}"] if https.address else []
    global_options = [
        "\tadmin off",
        # The redirect below is ours (it also covers requests by IP address); Caddy's would only
        # cover the domain.
        "\tauto_https disable_redirects",
        f"\thttp_port {https.http_port}",
        f"\thttps_port {https.port}",
        *([f"\temail {_quoted('https.letsencrypt_email', https.letsencrypt_email)}"] if https.uses_acme else []),
        *([f"\tacme_ca {_quoted('https.acme_ca', https.acme_ca)}"] if https.uses_acme and https.acme_ca else []),
        "\tstorage file_system {",
        f"\t\troot {_quoted('data_dir', str(state / 'storage'))}",
        "\t}",
        # TCP only (no HTTP/3 over UDP): one kind of port to open in a firewall.
        "\tservers {",
        "\t\tprotocols h1 h2",
        "\t}",
    ]
    tls = ([f"\ttls {_quoted('https.certificate', str(https.certificate))} {_quoted('https.key', str(https.key))}"]
           if not https.uses_acme else [])
    hsts = ([f'\theader Strict-Transport-Security "max-age={https.hsts_max_age}"'] if https.hsts_max_age else [])
    certificate = ("the files in https.certificate and https.key" if not https.uses_acme
                   else f"obtained and renewed by Caddy for {https.domain} (ACME)")
    lines = [
        "# The hub's TLS front, written by grader/hub/services/tls_front.py from the platform YAML's https: block",
        "# at every hub start (edits here are overwritten). HTTPS is proxied to the hub on loopback;",
        "# plain HTTP redirects to HTTPS. Certificate: " + certificate + ".",
        "{",
        *global_options,
        "}",
        "",
        f"https://{https.domain}:{https.port} {{",
        *bind,
        *tls,
        *hsts,
        # Websockets (kernels, terminals) pass through reverse_proxy as they are. X-Scheme tells the
        # hub the browser's scheme: the hub's proxy appends its own "http" to X-Forwarded-Proto, and
        # tornado reads the last entry, so without it the hub's cookies would not be marked Secure.
        f"\treverse_proxy {upstream(settings)} {{",
        "\t\theader_up X-Scheme https",
        # Stream responses (progress events, large downloads) as they come.
        "\t\tflush_interval -1",
        "\t}",
        "}",
        "",
        f"http://:{https.http_port} {{",
        *bind,
        f"\tredir {redirect_to} permanent",
        "}",
        "",
    ]
    return "\n".join(lines)


def _front_environment(settings: HubSettings) -> dict[str, str]:
    # Caddy writes under $HOME (.step), $XDG_CONFIG_HOME (autosave.json) and $XDG_DATA_HOME: all
    # kept in the front's folder, not in the home of whoever runs the hub.
    state = str(front_dir(settings))
    return {"HOME": state, "XDG_CONFIG_HOME": state, "XDG_DATA_HOME": state}


def _caddy_command(settings: HubSettings, verb: str) -> list[str]:
    return [caddy_binary(), verb, "--adapter", "caddyfile", "--config", str(caddyfile_path(settings))]


def front_service(settings: HubSettings) -> dict:
    """The managed service that runs Caddy (see the module's docstring for why a service)."""
    return {
        "name": SERVICE_NAME,
        "command": [*_caddy_command(settings, "run"), "--pidfile", str(front_dir(settings) / PID_FILE_NAME)],
        "cwd": str(front_dir(settings)),
        "environment": _front_environment(settings),
    }


def tls_front_services(settings: HubSettings) -> list[dict]:
    return [front_service(settings)] if settings.https.enabled else []


def _may_bind_low_ports(binary: str) -> bool:
    """Whether caddy carries file capabilities (``setcap cap_net_bind_service=+ep``)."""
    try:
        os.getxattr(binary, "security.capability")
        return True
    except OSError:
        return False


def _unprivileged_port_start() -> int:
    try:
        return int(UNPRIVILEGED_PORT_START.read_text())
    except (OSError, ValueError):
        return 1024


def _check_port(settings: HubSettings, key: str, port: int, *, euid: int, binary: str, source: str) -> None:
    """Fail now, naming the key, if Caddy could not listen on ``port`` (it would exit, be restarted, exit...)."""
    lowest = _unprivileged_port_start()
    if euid != 0 and port < lowest and not _may_bind_low_ports(binary):
        raise ConfigError(
            f"{source}: {key}: {port} is below {lowest} and the hub does not run as root, so Caddy cannot listen "
            f"there. Run the hub as root, pick ports from {lowest} up (e.g. port: 8443, http_port: 8080), or allow "
            f"it once: setcap cap_net_bind_service=+ep {binary}")
    family = socket.AF_INET6 if ":" in settings.https.address else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        # As Caddy does: connections of a previous front in TIME_WAIT do not block the port.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((settings.https.address or ("::" if family == socket.AF_INET6 else "0.0.0.0"), port))
        except OSError as error:
            if error.errno == errno.EADDRINUSE:
                raise ConfigError(f"{source}: {key}: port {port} is already in use on this machine (Debian's own "
                                  "caddy or nginx service? the hub runs its own front: systemctl disable --now "
                                  "caddy)") from None
            if error.errno != errno.EACCES:  # EACCES: decided above (capabilities the probe lacks)
                raise ConfigError(f"{source}: {key}: cannot listen on port {port}: {error.strerror}") from None


def _check_readable(key: str, path: Path, source: str) -> None:
    try:
        with open(path, "rb"):
            pass
    except OSError as error:
        raise ConfigError(f"{source}: {key}: {path}: {error.strerror}") from None


def _alive(process: psutil.Process) -> bool:
    try:
        return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def stop_stale_front(settings: HubSettings) -> int | None:
    """Stop a front that a hub killed without its teardown left running (services outlive it, in
    sessions of their own); it would hold the ports. Returns its pid, or None if there was none.

    Only the process in the pid file whose command line names this hub's Caddyfile is touched.
    """
    try:
        process = psutil.Process(int((front_dir(settings) / PID_FILE_NAME).read_text()))
        command = process.cmdline()
    except (OSError, ValueError, psutil.Error):
        return None
    if str(caddyfile_path(settings)) not in command or not _alive(process):
        return None
    pid = process.pid
    try:
        process.terminate()  # Caddy's graceful stop; psutil checks the pid was not reused meanwhile
        deadline = time.monotonic() + STALE_FRONT_GRACE
        while _alive(process) and time.monotonic() < deadline:
            time.sleep(0.1)
        if _alive(process):
            process.kill()
    except psutil.NoSuchProcess:
        pass
    print(f"[aicourse] stopped the TLS front a previous hub left running (pid {pid})", file=sys.stderr, flush=True)
    return pid


def prepare_front(settings: HubSettings, *, euid: int | None = None) -> Path:
    """At hub start, with ``https.enabled``: check the machine, write the Caddyfile, have Caddy
    validate it (it loads the certificate and key); return the Caddyfile's path."""
    source = str(config_path())
    https = settings.https
    binary = shutil.which(CADDY)
    if binary is None:
        raise ConfigError(f"{source}: https.enabled: caddy is not installed; install Debian's package: "
                          "apt-get install caddy (the hub starts it, its own service is not needed)")
    if not https.uses_acme:
        _check_readable("https.certificate", https.certificate, source)
        _check_readable("https.key", https.key, source)
    euid = os.geteuid() if euid is None else euid
    stop_stale_front(settings)
    for key, port in (("https.port", https.port), ("https.http_port", https.http_port)):
        _check_port(settings, key, port, euid=euid, binary=binary, source=source)
    front_dir(settings).mkdir(parents=True, exist_ok=True)
    path = caddyfile_path(settings)
    path.write_text(render_caddyfile(settings))
    result = subprocess.run(_caddy_command(settings, "validate"), env={**os.environ, **_front_environment(settings)},
                            capture_output=True, text=True, timeout=VALIDATE_TIMEOUT)
    if result.returncode != 0:
        # Caddy ends with one "Error: ..." line that says what is wrong (e.g. a key that is not PEM).
        lines = result.stderr.splitlines()
        errors = [line for line in lines if line.startswith("Error:")] or lines[-3:]
        raise ConfigError(f"{source}: https: Caddy rejects the front's configuration ({path}): " + " ".join(errors))
    # JupyterHub's own "running at" line names the loopback address behind the front.
    where = https.domain or https.address or "this machine"
    port = "" if https.port == 443 else f":{https.port}"
    certificate = "from Let's Encrypt" if https.uses_acme else str(https.certificate)
    print(f"[aicourse] HTTPS: https://{where}{port}/ served by Caddy (certificate {certificate}); "
          f"port {https.http_port} redirects to it; the hub stays on http://{upstream(settings)}",
          file=sys.stderr, flush=True)
    return path
