"""A minimal Chrome DevTools Protocol client over `--remote-debugging-pipe`, for the browser test
and the README screenshots. Standard library only: no port to race for, no driver to download.

Chromium reads commands from its fd 3 and writes replies and events to its fd 4, one JSON message
per NUL-terminated chunk. We open a page target, attach to it in flat mode, and record every event
so a test can look at what the page requested, what failed and what it logged.
"""

from __future__ import annotations

import base64
import fcntl
import json
import os
import shutil
import subprocess
import tempfile
import threading
import time
from pathlib import Path

CHROMIUM = Path("/usr/bin/chromium")

# This machine's network is closed: keep chromium from trying to reach anything of its own accord.
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-default-apps",
    "--disable-extensions",
    "--hide-scrollbars",
    "--mute-audio",
)


class BrowserError(RuntimeError):
    pass


class Chromium:
    """One headless chromium with one page. Use as a context manager."""

    def __init__(self, executable: Path = CHROMIUM, *, width: int = 1280, height: int = 900, timeout_s: float = 30.0):
        self.timeout_s = timeout_s
        self.events: list[dict] = []
        self._replies: dict[int, dict] = {}
        self._cond = threading.Condition()
        self._next_id = 0
        self._profile = tempfile.mkdtemp(prefix="smallcaps-chromium-")
        to_child_r, self._to_child = os.pipe()
        self._from_child, from_child_w = os.pipe()
        # Chromium wants the pipe on fds 3 and 4 exactly. Move our ends above 10 so that bash can
        # place them there without one redirection overwriting the other.
        r = fcntl.fcntl(to_child_r, fcntl.F_DUPFD_CLOEXEC, 10)
        w = fcntl.fcntl(from_child_w, fcntl.F_DUPFD_CLOEXEC, 10)
        os.close(to_child_r)
        os.close(from_child_w)
        args = [str(executable), *FLAGS, f"--user-data-dir={self._profile}", f"--window-size={width},{height}",
                "--remote-debugging-pipe", "about:blank"]
        self._proc = subprocess.Popen(
            ["/bin/bash", "-c", f'exec "$@" 3<&{r} 4>&{w} {r}<&- {w}>&-', "bash", *args],
            pass_fds=(r, w),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        os.close(r)
        os.close(w)
        self._stderr: list[bytes] = []
        threading.Thread(target=self._read, daemon=True).start()
        threading.Thread(target=lambda: self._stderr.extend(self._proc.stderr), daemon=True).start()
        target = self.call("Target.createTarget", url="about:blank")["targetId"]
        self.session = self.call("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
        for domain in ("Page", "Network", "Runtime", "Log"):
            self.page(f"{domain}.enable")
        self.page("Emulation.setDeviceMetricsOverride", width=width, height=height, deviceScaleFactor=1, mobile=False)

    # -- protocol ---------------------------------------------------------------------------------

    def _read(self) -> None:
        buf = b""
        while True:
            chunk = os.read(self._from_child, 1 << 16)
            if not chunk:
                break
            buf += chunk
            while b"\0" in buf:
                raw, buf = buf.split(b"\0", 1)
                msg = json.loads(raw)
                with self._cond:
                    if "id" in msg:
                        self._replies[msg["id"]] = msg
                    else:
                        self.events.append(msg)
                    self._cond.notify_all()
        with self._cond:
            self._cond.notify_all()

    def call(self, method: str, session: str | None = None, **params) -> dict:
        with self._cond:
            self._next_id += 1
            mid = self._next_id
        msg = {"id": mid, "method": method, "params": params}
        if session:
            msg["sessionId"] = session
        os.write(self._to_child, json.dumps(msg).encode() + b"\0")
        deadline = time.monotonic() + self.timeout_s
        with self._cond:
            while mid not in self._replies:
                left = deadline - time.monotonic()
                if left <= 0 or self._proc.poll() is not None:
                    raise BrowserError(f"no reply to {method} from chromium: {self.stderr()[-2000:]}")
                self._cond.wait(min(left, 0.5))
            reply = self._replies.pop(mid)
        if "error" in reply:
            raise BrowserError(f"{method} failed: {reply['error']}")
        return reply.get("result", {})

    def page(self, method: str, **params) -> dict:
        return self.call(method, self.session, **params)

    def wait_for(self, method: str, since: int = 0) -> dict:
        deadline = time.monotonic() + self.timeout_s
        with self._cond:
            while True:
                for ev in self.events[since:]:
                    if ev.get("method") == method:
                        return ev
                left = deadline - time.monotonic()
                if left <= 0:
                    raise BrowserError(f"chromium sent no {method} within {self.timeout_s} s")
                self._cond.wait(min(left, 0.5))

    def stderr(self) -> str:
        return b"".join(self._stderr).decode(errors="replace")

    # -- what the tests use -------------------------------------------------------------------------

    def open(self, url: str) -> list[dict]:
        """Load `url` until its load event; return the events it caused."""
        since = len(self.events)
        self.page("Page.navigate", url=url)
        self.wait_for("Page.loadEventFired", since)
        time.sleep(0.2)  # late events (a failed lazy request, a console error) after the load event
        with self._cond:
            return list(self.events[since:])

    def evaluate(self, expression: str):
        result = self.page("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in result:
            raise BrowserError(f"page script failed: {result['exceptionDetails']}")
        return result["result"].get("value")

    def screenshot(self, path: Path, clip: dict | None = None) -> Path:
        params = {"format": "png", "captureBeyondViewport": True}
        if clip:
            params["clip"] = {"scale": 1, **clip}
        data = self.page("Page.captureScreenshot", **params)["data"]
        path.write_bytes(base64.b64decode(data))
        return path

    def close(self) -> None:
        try:
            self.call("Browser.close")
        except BrowserError:
            pass
        try:
            self._proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
        os.close(self._to_child)
        shutil.rmtree(self._profile, ignore_errors=True)

    def __enter__(self) -> "Chromium":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def page_problems(events: list[dict]) -> dict[str, list]:
    """What went wrong or went out while a page loaded: requests to anything but file: and data:,
    failed requests, uncaught exceptions, console and log errors."""
    requests = [e["params"]["request"]["url"] for e in events if e.get("method") == "Network.requestWillBeSent"]
    return {
        "requests": requests,
        "outside": [u for u in requests if not u.startswith(("file:", "data:"))],
        "failed": [
            (e["params"].get("errorText"), e["params"].get("blockedReason"))
            for e in events if e.get("method") == "Network.loadingFailed"
        ],
        "exceptions": [e["params"] for e in events if e.get("method") == "Runtime.exceptionThrown"],
        "console_errors": [
            e["params"] for e in events
            if e.get("method") == "Runtime.consoleAPICalled" and e["params"].get("type") in ("error", "assert")
        ],
        "log_errors": [
            e["params"]["entry"] for e in events
            if e.get("method") == "Log.entryAdded" and e["params"]["entry"].get("level") == "error"
        ],
    }


IMAGES_JS = """JSON.stringify(Array.from(document.images).map(i => ({
    id: i.id, alt: i.alt, complete: i.complete, naturalWidth: i.naturalWidth, naturalHeight: i.naturalHeight,
    renderedWidth: i.getBoundingClientRect().width, scheme: i.currentSrc.split(':')[0]
})))"""
