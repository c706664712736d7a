"""Images for the live tests: built by the host's Docker engine from the project's base image, pushed to the
cluster's registry -- the same road a Space's image takes from the builder to the node."""

from __future__ import annotations

import subprocess
import uuid
from pathlib import Path

BASE_IMAGE = "spaces/base-python:3.11"  # made by infra/images/build-base.sh (scripts/test runs it)

# answers GET /token with the token baked into the image, on $PORT (default 8080)
APP = """\
import http.server, os
TOKEN = open("/srv/token").read()
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = (TOKEN if self.path == "/token" else os.environ.get("GREETING", "hello")).encode()
        self.send_response(200); self.send_header("Content-Length", str(len(body))); self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a): print(self.requestline, flush=True)
http.server.ThreadingHTTPServer(("", int(os.environ.get("PORT", "8080"))), H).serve_forever()
"""


def docker(*args: str, timeout: float = 600) -> str:
    proc = subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        raise AssertionError(f"docker {args[0]} failed: {proc.stderr.strip()[-2000:]}")
    return proc.stdout


def build_and_push(registry: str, workdir: Path, name: str = "live/token-app") -> tuple[str, str]:
    """Build an image answering its own random token, push it; returns (image reference, token)."""
    token = uuid.uuid4().hex
    (workdir / "token").write_text(token)
    (workdir / "app.py").write_text(APP)
    (workdir / "Dockerfile").write_text(
        f"FROM {BASE_IMAGE}\nCOPY token app.py /srv/\nEXPOSE 8080\nCMD [\"python3\", \"/srv/app.py\"]\n")
    ref = f"{registry}/{name}:{token[:12]}"
    docker("build", "-q", "-t", ref, str(workdir))
    try:
        docker("push", ref)
    finally:
        docker("image", "rm", ref)  # the node must pull it from the registry, not find it anywhere local
    return ref, token
