"""A Gradio app that looks at its own sandbox: its environment, files, processes and network, on request.

Endpoints (api_name): say (print to the run log), env, read, scan, http, gradio (how Gradio sees itself). Used
by tests/platform to check what a Space can and cannot see.
"""

import json
import os
import socket
import sys

import gradio as gr

print("PROBE-START " + os.environ.get("SPACE_ID", "?"), flush=True)
print("PROBE-ENV-KEYS " + json.dumps(sorted(os.environ)), flush=True)


def say(text: str) -> str:
    print(text, flush=True)
    return "said"


def env(_: str) -> str:
    return json.dumps(dict(os.environ))


def read(path: str) -> str:
    try:
        if os.path.isdir(path):
            return "OK " + json.dumps(sorted(os.listdir(path)))
        with open(path, "rb") as f:
            return "OK " + f.read(4096).decode("utf-8", "replace")
    except Exception as e:  # noqa: BLE001
        return f"ERR {type(e).__name__}: {e}"


def scan(needle: str) -> str:
    """Which processes' environment or command line holds ``needle``, among those this app may read?"""
    found, denied, readable = [], 0, 0
    for pid in os.listdir("/proc"):
        if not pid.isdigit() or int(pid) == os.getpid():
            continue
        for what in ("environ", "cmdline"):
            try:
                with open(f"/proc/{pid}/{what}", "rb") as f:
                    data = f.read()
                readable += 1
                if needle.encode() in data:
                    found.append(f"{pid}/{what}")
            except PermissionError:
                denied += 1
            except OSError:
                pass
    return json.dumps({"found": found, "denied": denied, "readable": readable})


def http(spec: str) -> str:
    """A raw HTTP/1.1 GET: {"host", "port"} or {"unix"}, "path", "hosthdr", "headers"} -> status line and body."""
    s = json.loads(spec)
    try:
        if "unix" in s:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.settimeout(10)
            sock.connect(s["unix"])
        else:
            sock = socket.create_connection((s["host"], int(s["port"])), timeout=10)
        head = f"GET {s.get('path', '/')} HTTP/1.1\r\nHost: {s.get('hosthdr', 'localhost')}\r\nConnection: close\r\n"
        head += "".join(f"{k}: {v}\r\n" for k, v in s.get("headers", {}).items())
        sock.sendall((head + "\r\n").encode())
        data = b""
        while len(data) < 65536:
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
        sock.close()
        return "OK " + data.decode("utf-8", "replace")[:4000]
    except Exception as e:  # noqa: BLE001
        return f"ERR {type(e).__name__}: {e}"


def gradio(_: str) -> str:
    """Whether Gradio knows it runs as a Space, and whether the ``spaces`` package's hot-reload server was loaded."""
    return json.dumps({"space": gr.utils.get_space(), "reload_server": "spaces.reloading" in sys.modules})


with gr.Blocks(title="probe") as demo:
    box = gr.Textbox(label="input")
    out = gr.Textbox(label="output")
    for fn in (say, env, read, scan, http, gradio):
        gr.Button(fn.__name__).click(fn, box, out, api_name=fn.__name__)

if __name__ == "__main__":
    demo.launch()
