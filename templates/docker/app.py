"""A tiny web app on the Python standard library: GET / answers a page, GET /health answers "ok"."""

import json
import os
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

PAGE = b"""<!doctype html><html><head><meta charset="utf-8"><title>Docker starter</title></head>
<body><h1>Hello from a Docker Space</h1><p>Edit app.py and the Dockerfile, then push.</p></body></html>"""


class Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        if self.path == "/health":
            body, kind = b"ok", "text/plain"
        elif self.path == "/api/info":
            body, kind = json.dumps({"space_id": os.environ.get("SPACE_ID")}).encode(), "application/json"
        else:
            body, kind = PAGE, "text/html; charset=utf-8"
        self.send_response(200)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


if __name__ == "__main__":
    port = int(os.environ.get("PORT", "7860"))
    ThreadingHTTPServer(("0.0.0.0", port), Handler).serve_forever()
