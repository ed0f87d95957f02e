"""Headless Chromium driven over the DevTools protocol, for tests that use a page as a person does.

Only what the live widget test needs: open a page, run JavaScript to find elements and read
them back, click and type through the browser's own input events (trusted, so the page
cannot tell them from a person's), and collect every console error and uncaught exception.
Playwright would do the same but downloads a browser build of its own; this uses the system
Chromium and the ``websocket-client`` package that Jupyter already depends on.
"""

from __future__ import annotations

import itertools
import json
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import websocket

CHROMIUM = shutil.which("chromium")
# Without the background-networking flags Chromium keeps trying to reach Google's hosts,
# which this machine's closed network refuses (each refusal is a log line, not a page error).
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-quic",
    "--window-size=1400,1000",
    "--remote-debugging-port=0",
]


class BrowserError(AssertionError):
    pass


class Page:
    """One tab of a fresh headless Chromium (its own throw-away profile)."""

    def __init__(self, timeout: float = 60.0) -> None:
        if CHROMIUM is None:
            raise BrowserError("chromium is not installed")
        self._profile = tempfile.TemporaryDirectory(prefix="lmkit-chromium-")
        self._proc = subprocess.Popen(
            [CHROMIUM, *FLAGS, f"--user-data-dir={self._profile.name}", "about:blank"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self._ids = itertools.count(1)
        self.errors: list[str] = []  # console errors and uncaught exceptions, in order
        try:
            # With port 0 Chromium picks a free port and writes it, with the browser's
            # websocket path, into DevToolsActivePort in the profile.
            active = Path(self._profile.name) / "DevToolsActivePort"

            def port_file():
                if self._proc.poll() is not None:
                    raise BrowserError(f"chromium exited with status {self._proc.returncode}")
                parts = active.read_text().split() if active.exists() else []
                return len(parts) == 2 and parts  # the port, then the browser's websocket path

            lines = wait_until(port_file, timeout, "Chromium to open its DevTools port")
            self._ws = websocket.create_connection(f"ws://127.0.0.1:{lines[0]}{lines[1]}", timeout=timeout, suppress_origin=True)
            target = self._call("Target.createTarget", url="about:blank")["targetId"]
            self._session = self._call("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
            for domain in ("Page", "Runtime", "Log"):
                self.send(f"{domain}.enable")
            # A headless tab is never the focused window; pages that check (JupyterLab's
            # menus and keyboard handling) should behave as in a person's browser.
            self.send("Emulation.setFocusEmulationEnabled", enabled=True)
        except BaseException:
            self.close()
            raise

    # --- the protocol ----------------------------------------------------------------------

    def _call(self, method: str, session: str | None = None, **params) -> dict:
        msg_id = next(self._ids)
        message = {"id": msg_id, "method": method, "params": params}
        if session:
            message["sessionId"] = session
        self._ws.send(json.dumps(message))
        while True:
            reply = json.loads(self._ws.recv())
            if reply.get("id") == msg_id:
                if "error" in reply:
                    raise BrowserError(f"{method}: {reply['error']}")
                return reply.get("result", {})
            self._event(reply)

    def send(self, method: str, **params) -> dict:
        return self._call(method, self._session, **params)

    def _event(self, message: dict) -> None:
        method, params = message.get("method"), message.get("params", {})
        if method == "Runtime.exceptionThrown":
            details = params["exceptionDetails"]
            text = details.get("exception", {}).get("description") or details.get("text", "")
            self.errors.append(f"uncaught: {text}")
        elif method == "Runtime.consoleAPICalled" and params["type"] in ("error", "assert"):
            args = [str(arg.get("value", arg.get("description", ""))) for arg in params["args"]]
            self.errors.append("console.error: " + " ".join(args))
        elif method == "Log.entryAdded" and params["entry"]["level"] == "error":
            entry = params["entry"]
            self.errors.append(f"log ({entry['source']}): {entry['text']} {entry.get('url', '')}".strip())

    # --- what a test uses ------------------------------------------------------------------

    def goto(self, url: str) -> None:
        self.send("Page.navigate", url=url)

    def js(self, expression: str):
        """The value of a JavaScript expression in the page (promises awaited)."""
        result = self.send("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in result:
            raise BrowserError(f"{expression}\n-> {result['exceptionDetails']}")
        return result["result"].get("value")

    def wait_for(self, expression: str, what: str, until=bool, timeout: float = 60.0):
        """Poll a JavaScript expression until ``until(value)`` holds, and return the value.
        (A DOM element comes back as an empty dict: test ``!!element`` instead.)"""
        last = []

        def check():
            last[:] = [self.js(expression)]
            return until(last[0])

        try:
            wait_until(check, timeout, what)
        except BrowserError as err:
            raise BrowserError(f"{err}; the last value was {last[0]!r}") from None
        return last[0]

    def click(self, selector_js: str, across: float = 0.5) -> None:
        """A real mouse click (move, press, release) on the element that the JavaScript
        expression ``selector_js`` returns, scrolled into view first: at mid-height and at
        ``across`` of its width (0 its left edge, 1 its right edge)."""
        box = self.js(
            f"(() => {{ const el = {selector_js}; if (!el) return null; el.scrollIntoView({{block: 'center'}});"
            f" const r = el.getBoundingClientRect(); return [r.x + r.width * {across}, r.y + r.height / 2]; }})()"
        )
        if box is None:
            raise BrowserError(f"nothing to click: {selector_js}")
        self.click_at(*box)

    def click_at(self, x: float, y: float) -> None:
        self.send("Input.dispatchMouseEvent", type="mouseMoved", x=x, y=y)
        for kind in ("mousePressed", "mouseReleased"):
            self.send("Input.dispatchMouseEvent", type=kind, x=x, y=y, button="left", clickCount=1)

    def type_text(self, text: str) -> None:
        """Type into the focused element as an input method would: one trusted ``input``
        event, without the key events that JupyterLab would read as shortcuts."""
        self.send("Input.insertText", text=text)

    def close(self) -> None:
        ws = getattr(self, "_ws", None)
        if ws is not None:
            try:
                self._call("Browser.close")
            except Exception:  # already gone: the process is ended below either way
                pass
            ws.close()
        try:
            self._proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
        self._profile.cleanup()

    def __enter__(self) -> Page:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def wait_until(check, timeout: float, what: str, interval: float = 0.1):
    """Call ``check`` until it returns something truthy (returned); fail after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise BrowserError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)
