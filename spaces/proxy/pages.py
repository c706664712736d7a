"""Answers the proxy writes itself: 404, the waiting page, error and paused pages, and their JSON twins.

Pages are small, self-contained HTML (inline CSS and script, no request to anything else) so they work while the
hub is down. The waiting page polls ``/__spaces/status`` on the app's own origin and reloads when the route says
``running``, so a browser lands on the app by itself. API clients get JSON ``{"error": ...}`` with the
``X-Error-Code`` / ``X-Error-Message`` headers the HF clients read.
"""

from __future__ import annotations

import html
import json

from spaces.domain.status import Status

_STYLE = """
:root{--a:#7c3aed;--bg:#f8f7fc;--card:#fff;--t:#1f1b2e;--m:#6b6580;--b:#e4e0ef;color-scheme:light dark}
@media(prefers-color-scheme:dark){:root{--a:#a78bfa;--bg:#100d1a;--card:#1a1627;--t:#ece9f6;--m:#a39cba;--b:#332c4a}}
*{box-sizing:border-box}body{margin:0;min-height:100vh;display:grid;place-items:center;background:var(--bg);
color:var(--t);font:15px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif}
.card{width:min(520px,92vw);background:var(--card);border:1px solid var(--b);border-radius:16px;padding:32px;
box-shadow:0 4px 24px rgba(60,30,120,.12);text-align:center}
.logo{width:44px;height:44px;border-radius:12px;margin:0 auto 16px;display:grid;place-items:center;color:#fff;
font-size:22px;background:linear-gradient(135deg,#8b5cf6,#6366f1)}
h1{font-size:1.35rem;margin:0 0 6px}p{margin:6px 0;color:var(--m)}code{font-size:.9em}
.stage{display:inline-block;margin:10px 0 4px;padding:2px 10px;border-radius:99px;font-size:.8rem;font-weight:600;
background:#ede9fe;color:#5b21b6}.err .stage{background:#fee2e2;color:#b91c1c}
pre{text-align:left;white-space:pre-wrap;word-break:break-word;background:var(--bg);border:1px solid var(--b);
border-radius:10px;padding:10px;font-size:.82rem;max-height:40vh;overflow:auto;color:var(--t)}
.spin{width:28px;height:28px;margin:14px auto 0;border-radius:50%;border:3px solid var(--b);border-top-color:var(--a);
animation:s .8s linear infinite}@keyframes s{to{transform:rotate(360deg)}}
"""

_WAIT_SCRIPT = """
(function(){var st=document.getElementById('st'),msg=document.getElementById('msg'),hd=document.getElementById('hd'),
nt=document.getElementById('nt'),n=0;
function poll(){fetch('/__spaces/status',{cache:'no-store',credentials:'same-origin'}).then(function(r){return r.json()})
.then(function(j){if(j.state==='running'){location.reload();return}
if(j.state==='error'||j.state==='paused'){location.reload();return}
st.textContent=j.label;st.setAttribute('data-stage',j.stage);hd.textContent=j.headline;msg.textContent=j.message;
nt.textContent=j.note||'';nt.hidden=!j.note;setTimeout(poll,n++<40?250:1000)})
.catch(function(){setTimeout(poll,1000)})}setTimeout(poll,150)})();
"""


def _page(title: str, body: str, *, cls: str = "", script: str = "") -> bytes:
    doc = (
        f'<!doctype html><html lang="en"><head><meta charset="utf-8">'
        f'<meta name="viewport" content="width=device-width,initial-scale=1"><title>{html.escape(title)}</title>'
        f"<style>{_STYLE}</style></head><body><main class=\"card {cls}\"><div class=\"logo\">&#9670;</div>{body}"
        f"</main>{f'<script>{script}</script>' if script else ''}</body></html>"
    )
    return doc.encode()


def not_found_page() -> bytes:
    return _page("Space not found", "<h1>404: Space not found</h1><p>There is no Space at this address, or it is "
                 "private and you are not signed in as someone who may see it.</p>", cls="err")


def waiting_for_capacity(message: str) -> bool:
    """Is this route message the runtime's "Waiting for <flavor> capacity: ..." (spaces.runtime.capacity)? A route
    published before routes carried the stage's reason says so only in its message."""
    return message.startswith("Waiting for ") and " capacity: " in message


def waiting_page(title: str, status: Status, note: str = "") -> bytes:
    """The page a browser gets while the app cannot answer yet: the Space's status as the hub's pages show it
    (``spaces.domain.status``, the same words, element markers and stage), which the script keeps current.
    ``note``: what this proxy alone knows (a wake that failed), shown apart from the status."""
    t = html.escape(title)
    body = (f'<h1>{t}</h1><p id="hd" data-status-headline>{html.escape(status.headline)}</p>'
            f'<span class="stage" id="st" data-stage-badge data-stage="{html.escape(status.stage)}">'
            f'{html.escape(status.label)}</span><p id="msg" data-stage-message>{html.escape(status.message)}</p>'
            f'<p id="nt"{"" if note else " hidden"}>{html.escape(note)}</p>'
            '<div class="spin" aria-label="waiting"></div>')
    return _page(f"{title} - {status.label}", body, script=_WAIT_SCRIPT)


def error_page(title: str, stage: str, message: str, *, paused: bool = False) -> bytes:
    head = "This Space is paused" if paused else "This Space is not running"
    body = (f"<h1>{html.escape(title)}</h1><p>{head}.</p><span class=\"stage\">{html.escape(stage)}</span>"
            f"<pre>{html.escape(message or 'No message was recorded.')}</pre>")
    return _page(f"{title} - {stage}", body, cls="" if paused else "err")


def bad_gateway_page(title: str) -> bytes:
    return _page("502 Bad Gateway", f"<h1>{html.escape(title)}</h1><p>The app did not answer. It is being checked "
                 "and restarted if needed; try again in a moment.</p>", cls="err")


def json_body(**fields: object) -> bytes:
    return json.dumps(fields, separators=(",", ":")).encode()


_REASONS = {200: "OK", 302: "Found", 303: "See Other", 400: "Bad Request", 404: "Not Found",
            405: "Method Not Allowed", 429: "Too Many Requests", 431: "Request Header Fields Too Large",
            501: "Not Implemented",
            502: "Bad Gateway", 503: "Service Unavailable", 504: "Gateway Timeout",
            505: "HTTP Version Not Supported"}


def response(status: int, body: bytes = b"", *, content_type: str = "text/html; charset=utf-8",
             headers: list[tuple[str, str]] | tuple = (), close: bool = False, head_only: bool = False) -> bytes:
    """A complete HTTP/1.1 response as bytes."""
    lines = [f"HTTP/1.1 {status} {_REASONS.get(status, 'Error')}", f"Content-Type: {content_type}",
             f"Content-Length: {len(body)}", "Cache-Control: no-store", "X-Content-Type-Options: nosniff"]
    lines += [f"{k}: {_header_safe(v)}" for k, v in headers]
    if close:
        lines.append("Connection: close")
    head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1", "replace")
    return head if head_only else head + body


def _header_safe(value: str) -> str:
    return " ".join(value.replace("\r", " ").replace("\n", " ").split())[:500].encode("latin-1", "replace").decode(
        "latin-1")
