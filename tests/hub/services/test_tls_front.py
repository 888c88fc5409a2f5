"""HTTPS on one machine: the ``https:`` settings, the Caddyfile made from them, and a real Caddy in
front of a real hub.

The unit tests check the settings' errors (file and key named) and have Caddy itself read the
rendered file (``caddy adapt``), so what is asserted is what Caddy will do, not only the text. The
hub test makes a throw-away CA and a certificate for ``localhost`` signed by it, starts the hub
with ``https.enabled`` (the hub starts Caddy as its service) on random loopback ports, and talks to
it over HTTPS trusting only that CA: the login page, the redirect from plain HTTP, HSTS, a
``Secure`` login cookie, the REST API, and a kernel's websocket through the front. Caddy's state
stays in the hub's data folder under pytest's tmp folder; the hub's teardown stops Caddy with it.
"""

from __future__ import annotations

import datetime
import ipaddress
import itertools
import json
import os
import shutil
import socket
import ssl
import subprocess
import time
from pathlib import Path

import pytest
import requests
import websocket
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from traitlets.config import Config

from grader.cli import main as grader_main
from grader.hub.config import apply_settings
from grader.hub.layers import ConfigError
from grader.hub.services.tls_front import (
    SERVICE_NAME,
    caddyfile_path,
    front_dir,
    front_service,
    prepare_front,
    render_caddyfile,
    stop_stale_front,
)
from grader.hub.settings import load_settings
from grader.resources import HUB_CONFIG_DIR
from tests.support.hubfixture import api_token, execute_cell, free_port, login, start_hub, start_server, stop_hub

CADDY = shutil.which("caddy")
needs_caddy = pytest.mark.skipif(CADDY is None, reason="caddy is not installed (apt-get install caddy; .ci/run does)")
COURSE = {"ai101": {"formgrader_port": 8010, "instructors": ["ian"], "students": ["sam"]}}


# --- certificates -------------------------------------------------------------------------------

def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _signed(subject: str, public_key, issuer: x509.Name, issuer_key, extensions) -> x509.Certificate:
    now = datetime.datetime.now(datetime.timezone.utc)
    builder = (x509.CertificateBuilder().subject_name(_name(subject)).issuer_name(issuer).public_key(public_key)
               .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
               .not_valid_after(now + datetime.timedelta(days=1)))
    for extension, critical in extensions:
        builder = builder.add_extension(extension, critical=critical)
    return builder.sign(issuer_key, hashes.SHA256())


def make_certificates(folder: Path) -> dict[str, Path]:
    """A CA of our own, and a certificate for localhost and 127.0.0.1 it signed: ca.pem, cert.pem, key.pem."""
    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca = _signed("aicourse test CA", ca_key.public_key(), _name("aicourse test CA"), ca_key,
                 [(x509.BasicConstraints(ca=True, path_length=0), True)])
    names = [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
    server = _signed("localhost", key.public_key(), ca.subject, ca_key, [
        (x509.SubjectAlternativeName(names), False),
        (x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), False)])
    paths = {"ca": folder / "ca.pem", "cert": folder / "cert.pem", "key": folder / "key.pem"}
    paths["ca"].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths["cert"].write_bytes(server.public_bytes(serialization.Encoding.PEM))
    paths["key"].write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                               serialization.NoEncryption()))
    os.chmod(paths["key"], 0o600)
    return paths


# --- settings and the Caddyfile (no hub) --------------------------------------------------------

def _load(tmp_path: Path, https: dict, **top) -> tuple:
    config_file = tmp_path / "platform.yaml"
    config_file.write_text(yaml.safe_dump({"courses": COURSE, "https": https, **top}))
    environ = {"AICOURSE_CONFIG": str(config_file), "AICOURSE_DATA_DIR": str(tmp_path / "data")}
    return load_settings(environ), config_file


def _adapted(settings) -> dict:
    """What Caddy makes of the rendered Caddyfile: its JSON configuration."""
    path = front_dir(settings) / "adapt" / "Caddyfile"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_caddyfile(settings))
    state = str(path.parent)
    environment = {**os.environ, "HOME": state, "XDG_CONFIG_HOME": state, "XDG_DATA_HOME": state}
    result = subprocess.run([CADDY, "adapt", "--adapter", "caddyfile", "--config", str(path)], capture_output=True,
                            text=True, env=environment, timeout=60, check=True)
    return json.loads(result.stdout)


def _servers_by_port(adapted: dict) -> dict[str, dict]:
    return {server["listen"][0].rsplit(":", 1)[1]: server for server in adapted["apps"]["http"]["servers"].values()}


def _handlers(routes_holder: dict) -> list[dict]:
    """The handlers a request meets, in order, with Caddy's subroutes (made for host matchers) opened."""
    handlers = []
    for route in routes_holder["routes"]:
        for handler in route["handle"]:
            handlers += _handlers(handler) if handler["handler"] == "subroute" else [handler]
    return handlers


def _wait_for_front(url: str, ca: Path, hub=None, timeout: float = 60) -> requests.Response:
    deadline = time.monotonic() + timeout
    while True:
        try:
            return requests.get(url, verify=str(ca), timeout=5)
        except requests.ConnectionError as error:
            if time.monotonic() > deadline:
                raise AssertionError(f"the front never answered at {url}:\n{hub.log()[-4000:] if hub else ''}") from error
            time.sleep(0.5)




def test_https_is_off_by_default_and_starts_nothing(tmp_path):
    settings = load_settings({"AICOURSE_DATA_DIR": str(tmp_path / "data")})
    assert not settings.https.enabled
    c = Config()
    apply_settings(c, settings)
    assert SERVICE_NAME not in [service["name"] for service in c.JupyterHub.services]


def test_the_example_in_platform_yaml_is_a_working_block(tmp_path):
    """The commented ``https:`` example an admin uncomments loads, and makes the front it describes."""
    lines = (HUB_CONFIG_DIR / "platform.yaml").read_text().splitlines()
    start = lines.index("# https:")
    example = yaml.safe_load("\n".join(line[2:] for line in itertools.takewhile(
        lambda line: line.startswith("#"), lines[start:])))
    settings, _ = _load(tmp_path, example["https"])
    assert settings.https.enabled and settings.https.certificate == Path("/etc/ssl/hub/fullchain.pem")
    assert "https://hub.example.org:443 {" in render_caddyfile(settings)


def test_given_certificate_is_served_by_the_front_and_the_hub_stays_on_loopback(tmp_path):
    (tmp_path / "certs").mkdir()
    settings, _ = _load(tmp_path, {"enabled": True, "domain": "hub.example.org", "certificate": "certs/cert.pem",
                                   "key": "certs/key.pem", "port": 8443, "http_port": 8080})
    # Relative to the YAML's folder, as every path in it.
    assert settings.https.certificate == tmp_path / "certs" / "cert.pem"
    assert not settings.https.uses_acme
    c = Config()
    apply_settings(c, settings)
    assert c.JupyterHub.bind_url == "http://127.0.0.1:8000"
    (front,) = [service for service in c.JupyterHub.services if service["name"] == SERVICE_NAME]
    assert front["command"][1:] == ["run", "--adapter", "caddyfile", "--config", str(caddyfile_path(settings)),
                                    "--pidfile", str(front_dir(settings) / "caddy.pid")]
    assert "url" not in front  # a process the hub runs, not a route on its proxy
    # Caddy's state in the data folder, not in the home of whoever runs the hub.
    state_folders = {front["environment"][name] for name in ("HOME", "XDG_DATA_HOME", "XDG_CONFIG_HOME")}
    assert state_folders == {str(front_dir(settings))}
    text = render_caddyfile(settings)
    assert f'tls "{tmp_path}/certs/cert.pem" "{tmp_path}/certs/key.pem"' in text
    assert "admin off" in text and "email" not in text


@needs_caddy
def test_caddy_reads_the_given_certificate_front_as_intended(tmp_path):
    settings, _ = _load(tmp_path, {"enabled": True, "domain": "hub.example.org", "certificate": "/etc/my certs/c.pem",
                                   "key": "/etc/my certs/k.pem", "port": 8443, "http_port": 8080,
                                   "address": "127.0.0.1"})
    adapted = _adapted(settings)
    assert adapted["admin"] == {"disabled": True}
    assert adapted["storage"]["root"] == str(front_dir(settings) / "storage")
    assert adapted["apps"]["tls"]["certificates"]["load_files"] == [
        {"certificate": "/etc/my certs/c.pem", "key": "/etc/my certs/k.pem", "tags": ["cert0"]}]
    servers = _servers_by_port(adapted)
    assert servers["8443"]["listen"] == ["127.0.0.1:8443"]
    assert servers["8443"]["routes"][0]["match"] == [{"host": ["hub.example.org"]}]
    handlers = _handlers(servers["8443"])
    assert handlers[0]["response"]["set"]["Strict-Transport-Security"] == ["max-age=31536000"]
    assert handlers[1]["handler"] == "reverse_proxy"
    assert handlers[1]["upstreams"] == [{"dial": "127.0.0.1:8000"}]
    assert handlers[1]["headers"]["request"]["set"]["X-Scheme"] == ["https"]
    (redirect,) = _handlers(servers["8080"])
    assert redirect["status_code"] == 301
    assert redirect["headers"]["Location"] == ["https://hub.example.org:8443{http.request.uri}"]


@needs_caddy
def test_a_domain_without_certificate_gets_one_from_lets_encrypt(tmp_path):
    settings, _ = _load(tmp_path, {"enabled": True, "domain": "hub.example.org", "letsencrypt_email": "it@example.org",
                                   "hsts_max_age": 0})
    assert settings.https.uses_acme
    adapted = _adapted(settings)
    assert "certificates" not in adapted["apps"]["tls"]
    (policy,) = adapted["apps"]["tls"]["automation"]["policies"]
    assert policy["subjects"] == ["hub.example.org"]
    assert {issuer["module"] for issuer in policy["issuers"]} >= {"acme"}
    assert all(issuer["email"] == "it@example.org" for issuer in policy["issuers"])
    servers = _servers_by_port(adapted)
    assert set(servers) == {"443", "80"}
    assert servers["443"]["listen"] == [":443"]  # every interface: Let's Encrypt must reach it
    # hsts_max_age 0: no header at all.
    assert [handler["handler"] for handler in _handlers(servers["443"])] == ["reverse_proxy"]
    (redirect,) = _handlers(servers["80"])
    assert redirect["headers"]["Location"] == ["https://hub.example.org{http.request.uri}"]


@pytest.mark.parametrize(("https", "top", "named"), [
    ({"enabled": True}, {}, "https.enabled: true, but the front has no certificate"),
    ({"enabled": True, "certificate": "cert.pem"}, {}, "https.key: required with https.certificate"),
    ({"enabled": True, "key": "key.pem", "domain": "hub.example.org"}, {},
     "https.certificate: required with https.key"),
    ({"enabled": True, "domain": "hub.example.org"}, {}, "https.letsencrypt_email: required to obtain a certificate"),
    ({"enabled": True, "certificate": "c.pem", "key": "k.pem", "address": "hub.example.org"}, {},
     "https.address: 'hub.example.org' is not an IP address"),
    ({"enabled": True, "certificate": "c.pem", "key": "k.pem"}, {"ip": "0.0.0.0"},
     "ip: '0.0.0.0': with https.enabled the hub listens on loopback only"),
])
def test_an_incomplete_https_block_names_the_file_and_the_key(tmp_path, https, top, named):
    with pytest.raises(ConfigError) as error:
        _load(tmp_path, https, **top)
    assert str(error.value).startswith(f"{tmp_path / 'platform.yaml'}: {named}")


def test_a_switched_off_half_written_block_stops_nothing(tmp_path):
    settings, _ = _load(tmp_path, {"enabled": False, "certificate": "cert.pem"})
    assert not settings.https.enabled


@pytest.mark.parametrize(("https", "named"), [
    ({"enabled": True, "domain": "hub example"}, "https.domain: 'hub example' does not match"),
    ({"certificate": ""}, "https.certificate: '' should be non-empty"),
    ({"port": 0}, "https.port: 0 is less than the minimum of 1"),
    ({"letsencrypt": {"email": "x@y.z"}}, "https.letsencrypt: unknown setting"),
])
def test_the_schema_checks_the_https_block(tmp_path, https, named):
    with pytest.raises(ConfigError) as error:
        _load(tmp_path, https)
    assert f"{tmp_path / 'platform.yaml'}: {named}" in str(error.value)


def test_a_path_caddy_would_misread_is_refused(tmp_path, monkeypatch):
    settings, config_file = _load(tmp_path, {"enabled": True, "certificate": "/etc/{env.HOME}.pem", "key": "/k.pem"})
    monkeypatch.setenv("AICOURSE_CONFIG", str(config_file))
    with pytest.raises(ConfigError, match=f"^{config_file}: https.certificate: '/etc/{{env.HOME}}.pem': .* braces"):
        render_caddyfile(settings)


def test_the_front_cannot_share_a_port_with_the_hub(tmp_path):
    with pytest.raises(ConfigError, match="https.port: port 8000 is already used by port"):
        _load(tmp_path, {"enabled": True, "certificate": "c.pem", "key": "k.pem", "port": 8000})


@needs_caddy
def test_the_hub_refuses_to_start_with_a_missing_or_broken_certificate(tmp_path, monkeypatch):
    certs = make_certificates(tmp_path)
    https = {"enabled": True, "certificate": str(tmp_path / "missing.pem"), "key": str(certs["key"]),
             "address": "127.0.0.1", "port": free_port(), "http_port": free_port()}
    settings, config_file = _load(tmp_path, https)
    monkeypatch.setenv("AICOURSE_CONFIG", str(config_file))
    missing = f"^{config_file}: https.certificate: {tmp_path / 'missing.pem'}: No such file"
    with pytest.raises(ConfigError, match=missing):
        prepare_front(settings)
    # A key that is not the certificate's: Caddy's own check, run before the hub starts.
    other = tmp_path / "other"
    other.mkdir()
    other_key = make_certificates(other)["key"]
    settings, _ = _load(tmp_path, {**https, "certificate": str(certs["cert"]), "key": str(other_key)})
    with pytest.raises(ConfigError, match=f"^{config_file}: https: Caddy rejects the front's configuration"):
        prepare_front(settings)


@needs_caddy
def test_low_ports_without_root_and_taken_ports_are_refused_before_caddy_runs(tmp_path, monkeypatch):
    certs = make_certificates(tmp_path)
    https = {"enabled": True, "certificate": str(certs["cert"]), "key": str(certs["key"]), "address": "127.0.0.1"}
    settings, config_file = _load(tmp_path, {**https, "port": 443, "http_port": free_port()})
    monkeypatch.setenv("AICOURSE_CONFIG", str(config_file))
    # As a user other than root, unless caddy carries cap_net_bind_service (Debian's does not).
    monkeypatch.setattr("grader.hub.services.tls_front._may_bind_low_ports", lambda binary: False)
    with pytest.raises(ConfigError, match=r"https.port: 443 is below \d+ and the hub does not run as root.*setcap"):
        prepare_front(settings, euid=1000)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        settings, _ = _load(tmp_path, {**https, "port": free_port(), "http_port": taken.getsockname()[1]})
        with pytest.raises(ConfigError, match=f"https.http_port: port {taken.getsockname()[1]} is already in use"):
            prepare_front(settings)
    assert not caddyfile_path(settings).exists()  # nothing written for a front that cannot run


@needs_caddy
def test_a_front_left_by_a_killed_hub_is_stopped_at_the_next_start(tmp_path, monkeypatch):
    certs = make_certificates(tmp_path)
    settings, config_file = _load(tmp_path, {"enabled": True, "certificate": str(certs["cert"]),
                                             "key": str(certs["key"]), "address": "127.0.0.1", "port": free_port(),
                                             "http_port": free_port()})
    monkeypatch.setenv("AICOURSE_CONFIG", str(config_file))
    prepare_front(settings)
    service = front_service(settings)
    # As the hub runs it; a hub killed with SIGKILL leaves it running in its own session.
    left = subprocess.Popen(service["command"], env={**os.environ, **service["environment"]}, cwd=service["cwd"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        _wait_for_front(f"https://localhost:{settings.https.port}/", certs["ca"], None)
        prepare_front(settings)  # would say the port is in use if the old front were still there
        assert left.wait(timeout=5) == 0  # Caddy's graceful exit, on SIGTERM
    finally:
        if left.poll() is None:
            left.kill()
            left.wait()
    # A pid file naming some other process is left alone.
    (front_dir(settings) / "caddy.pid").write_text(str(os.getpid()))
    assert stop_stale_front(settings) is None


@needs_caddy
def test_grader_hub_caddyfile_prints_what_the_hub_runs(tmp_path, monkeypatch, capsys):
    settings, config_file = _load(tmp_path, {"enabled": True, "domain": "hub.example.org",
                                             "letsencrypt_email": "it@example.org"})
    monkeypatch.setenv("AICOURSE_CONFIG", str(config_file))
    monkeypatch.setenv("AICOURSE_DATA_DIR", str(tmp_path / "data"))
    assert grader_main(["hub", "caddyfile"]) == 0
    assert capsys.readouterr().out == render_caddyfile(settings)
    config_file.write_text(yaml.safe_dump({"courses": COURSE}))
    assert grader_main(["hub", "caddyfile"]) == 1
    assert "https.enabled is not true" in capsys.readouterr().err


# --- a real Caddy in front of a real hub --------------------------------------------------------

@pytest.fixture(scope="module")
def front(tmp_path_factory):
    certs = make_certificates(tmp_path_factory.mktemp("certs"))
    https_port, http_port = free_port(), free_port()
    config_file = tmp_path_factory.mktemp("config") / "platform.yaml"
    config_file.write_text(yaml.safe_dump({
        "courses": COURSE,
        "idle_culler": {"enabled": False},
        "https": {"enabled": True, "domain": "localhost", "address": "127.0.0.1", "port": https_port,
                  "http_port": http_port, "certificate": str(certs["cert"]), "key": str(certs["key"])},
    }))
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("AICOURSE_CONFIG", str(config_file))
        hub = start_hub(tmp_path_factory.mktemp("hub-data"))
    try:
        base = f"https://localhost:{https_port}"
        _wait_for_front(f"{base}/hub/login", certs["ca"], hub)
        yield {"hub": hub, "base": base, "ca": certs["ca"], "http_port": http_port, "https_port": https_port}
    finally:
        stop_hub(hub)
    # The hub stopped Caddy itself, gracefully (Caddy logs JSON lines into the hub's log), and
    # nothing listens on the front's ports any more.
    caddy_log = [json.loads(line) for line in hub.log().splitlines() if line.startswith('{"level"')]
    assert any(entry["msg"] == "shutdown complete" for entry in caddy_log), hub.log()[-3000:]
    for port in (https_port, http_port):
        with socket.socket() as probe:
            assert probe.connect_ex(("127.0.0.1", port)) != 0, f"something still listens on {port}"


@pytest.mark.slow
@pytest.mark.hub
@needs_caddy
def test_the_login_page_is_served_over_https_with_hsts(front):
    response = requests.get(f"{front['base']}/hub/login", verify=str(front["ca"]), timeout=10)
    assert response.status_code == 200
    assert 'name="password"' in response.text
    assert response.headers["Strict-Transport-Security"] == "max-age=31536000"
    # Only the CA we made vouches for it: a client with the system's CAs refuses the connection.
    with pytest.raises(requests.exceptions.SSLError):
        requests.get(f"{front['base']}/hub/login", timeout=10)
    # And it is the certificate we gave, for localhost.
    context = ssl.create_default_context(cafile=str(front["ca"]))
    with socket.create_connection(("127.0.0.1", front["https_port"])) as raw, \
            context.wrap_socket(raw, server_hostname="localhost") as tls:
        assert tls.version() in ("TLSv1.2", "TLSv1.3")
        assert dict(part[0] for part in tls.getpeercert()["subject"])["commonName"] == "localhost"


@pytest.mark.slow
@pytest.mark.hub
@needs_caddy
def test_plain_http_redirects_to_https(front):
    response = requests.get(f"http://localhost:{front['http_port']}/hub/login?next=%2Fhub%2Fhome",
                            allow_redirects=False, timeout=10)
    assert response.status_code == 301
    assert response.headers["Location"] == f"{front['base']}/hub/login?next=%2Fhub%2Fhome"
    # Followed, the browser lands on the login page over HTTPS.
    followed = requests.get(f"http://localhost:{front['http_port']}/hub/login", verify=str(front["ca"]), timeout=10)
    assert followed.url == f"{front['base']}/hub/login" and followed.status_code == 200


@pytest.mark.slow
@pytest.mark.hub
@needs_caddy
def test_login_api_and_a_kernel_websocket_work_through_the_front(front):
    hub, base, ca = front["hub"], front["base"], str(front["ca"])
    # verify= on each call: a session's own verify loses to $REQUESTS_CA_BUNDLE where that is set.
    session = requests.Session()
    session.get(f"{base}/hub/login", verify=ca).raise_for_status()
    response = session.post(f"{base}/hub/login", allow_redirects=False, verify=ca, data={
        "username": "sam", "password": hub.passwords["sam"], "_xsrf": session.cookies.get("_xsrf")})
    assert response.status_code == 302, response.text
    # The hub knew the browser used HTTPS (X-Scheme from the front): its login cookie is Secure.
    (login_cookie,) = [cookie for cookie in session.cookies if cookie.name == "jupyterhub-hub-login"]
    assert login_cookie.secure

    token = api_token(hub, login(hub, "sam"), "sam")
    headers = {"Authorization": f"token {token}"}
    assert requests.get(f"{base}/hub/api/user", headers=headers, verify=ca, timeout=10).json()["name"] == "sam"

    start_server(hub, "sam", token)
    kernel = requests.post(f"{base}/user/sam/api/kernels", headers=headers, json={"name": "python3"}, verify=ca,
                           timeout=60)
    assert kernel.status_code == 201, kernel.text
    ws = websocket.create_connection(
        f"wss://localhost:{front['https_port']}/user/sam/api/kernels/{kernel.json()['id']}/channels",
        header=[f"Authorization: token {token}"], sslopt={"ca_certs": ca}, timeout=120)
    try:
        assert execute_cell(ws, "6 * 7") == "42"
    finally:
        ws.close()
