"""Checks that a running starter Space answers like the template it was built from (stdlib only).

    python templates/verify.py gradio http://127.0.0.1:7860     # exit 0 when it answers, 1 with the reason

Used by the builder and runtime tests after building a template: ``wait_ready`` waits for the first good answer
(bounded, failing early when the app's process exits), then ``verify`` checks what each template serves.
"""

from __future__ import annotations

import subprocess
import sys
import time
import urllib.error
import urllib.request

#: per template: (path, text the answer must contain)
CHECKS: dict[str, list[tuple[str, str]]] = {
    "gradio": [("/", "gradio"), ("/config", "Greeting")],
    "streamlit": [("/_stcore/health", "ok"), ("/", "<div id=\"root\">")],
    "docker": [("/health", "ok"), ("/", "Hello from a Docker Space")],
    "static": [("/", "Hello from a static Space"), ("/style.css", "font-family")],
}
#: the path whose first 200 means "ready"
READY_PATH = {"gradio": "/", "streamlit": "/_stcore/health", "docker": "/health", "static": "/"}


class NotReady(Exception):
    pass


def get(url: str, timeout: float = 5.0) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:  # noqa: S310 - loopback test URLs
            return resp.status, resp.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode("utf-8", "replace")


def wait_ready(url: str, *, deadline_s: float = 60.0, proc: subprocess.Popen | None = None) -> None:
    """Return at the first 200 from ``url``; raise NotReady when ``proc`` exits or the deadline passes."""
    deadline = time.monotonic() + deadline_s
    delay, last = 0.02, "no answer yet"
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise NotReady(f"the app exited with status {proc.returncode} before answering {url}")
        try:
            status, _ = get(url, timeout=2.0)
            if status == 200:
                return
            last = f"HTTP {status}"
        except OSError as exc:  # connection refused while the app starts
            last = str(exc)
        time.sleep(delay)
        delay = min(delay * 1.5, 0.25)
    raise NotReady(f"{url} did not answer 200 within {deadline_s:.0f} s ({last})")


def verify(template: str, base_url: str) -> None:
    """Raise AssertionError naming the first check that fails."""
    base = base_url.rstrip("/")
    for path, needle in CHECKS[template]:
        status, body = get(base + path)
        assert status == 200, f"{template}: GET {path} answered {status}"
        assert needle in body, f"{template}: GET {path} does not contain {needle!r}"


if __name__ == "__main__":
    name, url = sys.argv[1], sys.argv[2]
    try:
        wait_ready(url.rstrip("/") + READY_PATH[name], deadline_s=float(sys.argv[3]) if len(sys.argv) > 3 else 60)
        verify(name, url)
    except (NotReady, AssertionError) as exc:
        print(f"FAIL: {exc}")
        sys.exit(1)
    print(f"OK: {name} at {url}")
