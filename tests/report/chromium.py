"""Open a page in headless Chromium over the DevTools protocol (stdlib only) and report what happened.

Chromium's --remote-debugging-pipe reads NUL-terminated JSON commands on fd 3 and writes replies
and events on fd 4, so no websocket client or port is needed. `inspect_page` loads a file, waits
for the load event and for every <img> to decode, and returns the console errors, the exceptions,
the URLs requested other than file: and data:, each image's decode result, and a full-page PNG.

`scroll_width`, `inner_width` and `overflow` say whether the page is wider than the window.

Run as a script to look at a report: python tests/report/chromium.py report.html shot.png [--print]
"""

from __future__ import annotations

import base64
import json
import os
import select
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

# Flags that work as root in a container with no display, GPU or network.
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--hide-scrollbars",
    "--mute-audio",
]
CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")

# Resolves to [[decoded, naturalWidth, naturalHeight], ...] once every image has decoded or failed.
IMAGES_JS = """
Promise.all(Array.from(document.images).map(img =>
  img.decode().then(() => [true, img.naturalWidth, img.naturalHeight], () => [false, img.naturalWidth, img.naturalHeight])
)).then(r => JSON.stringify(r))
"""


# How far the page overflows: the document's scroll width against the viewport, and the most any
# table, figure or image sticks out past the right edge of <main>'s content box (a table can
# overflow main without widening the document when main is narrower than the window).
LAYOUT_JS = """
(() => {
  const main = document.querySelector('main') || document.body;
  const box = main.getBoundingClientRect();
  const right = box.right - parseFloat(getComputedStyle(main).paddingRight);
  let overflow = 0;
  for (const el of main.querySelectorAll('table, figure, img, div, p')) {
    overflow = Math.max(overflow, el.getBoundingClientRect().right - right);
  }
  return JSON.stringify([document.documentElement.scrollWidth, window.innerWidth, overflow]);
})()
"""


def find_chromium() -> str | None:
    """Path of a Chromium-family browser on PATH, or None."""
    for name in CANDIDATES:
        path = shutil.which(name)
        if path:
            return path
    return None


@dataclass
class PageReport:
    console_errors: list[str] = field(default_factory=list)
    exceptions: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)
    images: list[tuple[bool, int, int]] = field(default_factory=list)
    title: str = ""
    scroll_width: int = 0
    inner_width: int = 0
    overflow: float = 0.0
    screenshot: bytes = b""
    pdf: bytes = b""


class _Pipe:
    """The DevTools pipe: send commands, collect events, wait for replies with a deadline."""

    def __init__(self, write_fd: int, read_fd: int, deadline: float):
        self.write_fd, self.read_fd, self.deadline = write_fd, read_fd, deadline
        self.buffer = b""
        self.next_id = 0
        self.events: list[dict] = []
        self.replies: dict[int, dict] = {}

    def _read_messages(self) -> None:
        remaining = self.deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError("Chromium did not answer in time")
        ready, _, _ = select.select([self.read_fd], [], [], remaining)
        if not ready:
            raise TimeoutError("Chromium did not answer in time")
        chunk = os.read(self.read_fd, 1 << 20)
        if not chunk:
            raise ConnectionError("Chromium closed the DevTools pipe")
        self.buffer += chunk
        while b"\0" in self.buffer:
            raw, self.buffer = self.buffer.split(b"\0", 1)
            message = json.loads(raw)
            if "id" in message:
                self.replies[message["id"]] = message
            else:
                self.events.append(message)

    def call(self, method: str, params: dict | None = None, session: str | None = None) -> dict:
        self.next_id += 1
        message = {"id": self.next_id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        os.write(self.write_fd, json.dumps(message).encode() + b"\0")
        while self.next_id not in self.replies:
            self._read_messages()
        reply = self.replies.pop(self.next_id)
        if "error" in reply:
            raise RuntimeError(f"{method}: {reply['error']}")
        return reply.get("result", {})

    def wait_for(self, method: str) -> dict:
        while True:
            for i, event in enumerate(self.events):
                if event.get("method") == method:
                    return self.events.pop(i)
            self._read_messages()


def inspect_page(
    path: str | Path,
    browser: str | None = None,
    width: int = 1280,
    height: int = 800,
    timeout: float = 90.0,
    print_media: bool = False,
    pdf: bool = False,
) -> PageReport:
    """Load `path` in headless Chromium and report errors, requests, image decodes and a screenshot."""
    browser = browser or find_chromium()
    if browser is None:
        raise FileNotFoundError("no Chromium on PATH")
    url = Path(path).resolve().as_uri()
    to_browser_r, to_browser_w = os.pipe()
    from_browser_r, from_browser_w = os.pipe()

    def child_fds():  # the protocol fixes the numbers: commands on 3, replies on 4
        # Copy to fresh numbers first, so placing one end cannot overwrite the other.
        commands, replies = os.dup(to_browser_r), os.dup(from_browser_w)
        os.dup2(commands, 3)
        os.dup2(replies, 4)

    with tempfile.TemporaryDirectory(prefix="debias-chromium-") as profile:
        proc = subprocess.Popen(
            [browser, *FLAGS, f"--user-data-dir={profile}", "--remote-debugging-pipe", "about:blank"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            preexec_fn=child_fds,
            pass_fds=(3, 4),  # kept open by the close-fds pass that follows preexec_fn
        )
        os.close(to_browser_r)
        os.close(from_browser_w)
        pipe = _Pipe(to_browser_w, from_browser_r, time.monotonic() + timeout)
        report = PageReport()
        try:
            target = pipe.call("Target.createTarget", {"url": "about:blank"})["targetId"]
            session = pipe.call("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
            for domain in ("Page", "Runtime", "Log", "Network"):
                pipe.call(f"{domain}.enable", session=session)
            pipe.call(
                "Emulation.setDeviceMetricsOverride",
                {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False},
                session=session,
            )
            if print_media:
                pipe.call("Emulation.setEmulatedMedia", {"media": "print"}, session=session)
            pipe.call("Page.navigate", {"url": url}, session=session)
            pipe.wait_for("Page.loadEventFired")
            decoded = pipe.call(
                "Runtime.evaluate",
                {"expression": IMAGES_JS, "awaitPromise": True, "returnByValue": True},
                session=session,
            )
            report.images = [tuple(x) for x in json.loads(decoded["result"]["value"])]
            report.title = pipe.call(
                "Runtime.evaluate", {"expression": "document.title", "returnByValue": True}, session=session
            )["result"]["value"]
            layout = pipe.call("Runtime.evaluate", {"expression": LAYOUT_JS, "returnByValue": True}, session=session)[
                "result"
            ]["value"]
            report.scroll_width, report.inner_width, report.overflow = json.loads(layout)
            size = pipe.call("Page.getLayoutMetrics", session=session)["cssContentSize"]
            shot = pipe.call(
                "Page.captureScreenshot",
                {
                    "format": "png",
                    "captureBeyondViewport": True,
                    "clip": {"x": 0, "y": 0, "width": width, "height": size["height"], "scale": 1},
                },
                session=session,
            )
            report.screenshot = base64.b64decode(shot["data"])
            if pdf:
                report.pdf = base64.b64decode(
                    pipe.call("Page.printToPDF", {"printBackground": True}, session=session)["data"]
                )
            for event in pipe.events:
                method, params = event.get("method"), event.get("params", {})
                if method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
                    report.console_errors.append(
                        " ".join(str(a.get("value", a.get("description", ""))) for a in params.get("args", []))
                    )
                elif method == "Log.entryAdded" and params.get("entry", {}).get("level") == "error":
                    entry = params["entry"]
                    report.console_errors.append(
                        f"{entry.get('source')}: {entry.get('text')} {entry.get('url', '')}".strip()
                    )
                elif method == "Runtime.exceptionThrown":
                    details = params.get("exceptionDetails", {})
                    report.exceptions.append(details.get("exception", {}).get("description") or details.get("text", ""))
                elif method == "Network.requestWillBeSent":
                    requested = params.get("request", {}).get("url", "")
                    if not requested.startswith(("data:", "file:", "about:")):
                        report.requests.append(requested)
            try:
                pipe.call("Browser.close")
            except (ConnectionError, TimeoutError):
                pass
        finally:
            os.close(to_browser_w)
            os.close(from_browser_r)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    return report


if __name__ == "__main__":
    page, shot = sys.argv[1], sys.argv[2]
    result = inspect_page(page, print_media="--print" in sys.argv, pdf="--pdf" in sys.argv)
    Path(shot).write_bytes(result.screenshot)
    if result.pdf:
        Path(shot).with_suffix(".pdf").write_bytes(result.pdf)
    print(
        json.dumps(
            {
                "title": result.title,
                "scroll_width": result.scroll_width,
                "inner_width": result.inner_width,
                "overflow": result.overflow,
                "console_errors": result.console_errors,
                "exceptions": result.exceptions,
                "requests": result.requests,
                "images": len(result.images),
                "images_failed": sum(1 for ok, w, _ in result.images if not ok or w == 0),
            },
            indent=1,
        )
    )
