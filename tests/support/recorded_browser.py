"""A headless Chromium (tests/support/browser.py) that keeps a record of what it loaded, for tests
that check a whole run of pages at once (tests/integration/test_first_week.py).

From Chrome's DevTools network log (``goog:loggingPrefs``, read through chromedriver's
``performance`` log): every request's URL and the page that asked for it, every response's status,
every request that failed. Screenshots are numbered, in a folder of the test's choice (a CI
artifact folder). ``offline=True`` resolves no host name but 127.0.0.1, as
tests/integration/test_browser.py's offline tests do: a CDN is out of reach, the hub is not.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from tests.support import browser as support

# Every host name resolves to nothing: only the hub on 127.0.0.1 can be reached.
OFFLINE_FLAG = "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1"
LOOPBACK = {"127.0.0.1"}
# Schemes that are no network access.
LOCAL_SCHEMES = {"data", "blob", "about", "chrome", "chrome-extension", "devtools"}


@dataclass(frozen=True)
class Exchange:
    """One request the browser made: its URL, the page (document) that made it, the answer's status
    (None if none came) and, for a request that failed, Chromium's error."""

    url: str
    page: str
    method: str
    status: int | None = None
    error: str = ""

    def __str__(self) -> str:
        answer = self.status if self.status is not None else self.error or "no answer"
        return f"{answer} {self.method} {self.url} (from {self.page})"


class RecordedBrowser(support.Browser):
    """One Chromium, its own throw-away profile, and the record of its network (``exchanges()``)."""

    def __init__(self, shots: Path, *, offline: bool = True) -> None:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service

        os.environ["SE_OFFLINE"] = "true"  # never let Selenium Manager look for a driver
        self.shots = shots
        self.shots.mkdir(parents=True, exist_ok=True)
        self._count = 0
        self._gone = False
        self._requests: dict[str, dict] = {}  # requestId -> what is known of it, in order
        self._done: list[Exchange] = []
        self.console: list[str] = []
        self.profile = tempfile.mkdtemp(prefix="chromium-profile-")
        options = webdriver.ChromeOptions()
        options.binary_location = str(support.CHROMIUM)
        flags = [*support.CHROMIUM_FLAGS, f"--user-data-dir={self.profile}"]
        for flag in flags + ([OFFLINE_FLAG] if offline else []):
            options.add_argument(flag)
        options.set_capability("goog:loggingPrefs", {"performance": "ALL", "browser": "ALL"})
        options.add_experimental_option("perfLoggingPrefs", {"enableNetwork": True, "enablePage": False})
        self.service = Service(str(support.CHROMEDRIVER))
        self.driver = webdriver.Chrome(service=self.service, options=options)

    # --- the network record ---------------------------------------------------------------------

    def drain(self) -> None:
        """Read what chromedriver has buffered since the last call (it keeps it until read)."""
        if self._gone:
            return
        try:
            entries = self.driver.get_log("performance")
            console = self.driver.get_log("browser")
        except Exception:  # the browser is gone
            return
        self.console += [f"{entry.get('level')} {entry.get('message')}" for entry in console]
        for entry in entries:
            message = json.loads(entry["message"])["message"]
            method, params = message.get("method", ""), message.get("params", {})
            if method == "Network.requestWillBeSent":
                known = self._requests.pop(params["requestId"], None)
                if known is not None and params.get("redirectResponse"):  # a redirect: its own answer
                    self._done.append(Exchange(known["url"], known["page"], known["method"],
                                               params["redirectResponse"].get("status")))
                request = params["request"]
                self._requests[params["requestId"]] = {
                    "url": request["url"], "page": params.get("documentURL", ""), "method": request.get("method", "")}
            elif method == "Network.responseReceived":
                known = self._requests.get(params["requestId"])
                if known is not None:
                    known["status"] = params["response"].get("status")
            elif method == "Network.loadingFailed":
                known = self._requests.get(params["requestId"])
                if known is not None:
                    known["error"] = params.get("errorText", "failed") + (" (canceled)" if params.get("canceled") else "")
            elif method == "Network.webSocketCreated":
                self._done.append(Exchange(params["url"], params.get("initiator", {}).get("url", ""), "WEBSOCKET"))

    def exchanges(self) -> list[Exchange]:
        self.drain()
        pending = [Exchange(r["url"], r["page"], r["method"], r.get("status"), r.get("error", ""))
                   for r in self._requests.values()]
        return self._done + pending

    def not_found(self) -> list[Exchange]:
        """Every answer 404 the browser got, page or resource, redirects included."""
        return [exchange for exchange in self.exchanges() if exchange.status == 404]

    def off_loopback(self) -> list[Exchange]:
        """Every request to a host other than 127.0.0.1 (made, whether or not anything answered)."""
        return [exchange for exchange in self.exchanges()
                if urlsplit(exchange.url).scheme not in LOCAL_SCHEMES and urlsplit(exchange.url).hostname not in LOOPBACK]

    def cdn_unreachable(self, probe: str = "https://cdnjs.cloudflare.com/ajax/libs/mathjax/2.7.7/latest.js") -> bool:
        """Whether a fetch from the current page to a CDN fails (the offline premise). The probe
        itself is then taken out of the record, as the only off-loopback request the test makes."""
        failed = self.driver.execute_async_script(
            "const done = arguments[arguments.length - 1];"
            f"fetch('{probe}', {{mode: 'no-cors'}}).then(() => done(false), () => done(true));")
        self.drain()
        self._done = [exchange for exchange in self._done if exchange.url != probe]
        self._requests = {key: value for key, value in self._requests.items() if value["url"] != probe}
        return failed

    def write_record(self, folder: Path) -> Path:
        """The network record and the console's messages, as text files in ``folder``."""
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / "network.txt"
        path.write_text("".join(f"{exchange}\n" for exchange in self.exchanges()))
        (folder / "console.txt").write_text("".join(f"{line}\n" for line in self.console))
        return path

    # --- screenshots ----------------------------------------------------------------------------

    def screenshot(self, name: str) -> Path:
        self._count += 1
        path = self.shots / f"{self._count:02d}-{name}.png"
        self.driver.save_screenshot(str(path))
        self.drain()
        return path

    def quit(self) -> None:
        try:
            self.drain()
            self.driver.quit()
        except Exception:  # already gone
            pass
        finally:
            self._gone = True
            self.service.stop()
            shutil.rmtree(self.profile, ignore_errors=True)
