"""A hostile tenant for the tenancy tests: a Gradio app that, on request, tries a read, a write, a connection or
an allocation from inside its sandbox and reports what it got ("OK ..." or "ERR <exception>: ...").

At start it leaves a secret (its mark) in its HOME and its working copy, for another platform's Space to look for.
"""

import json
import os
import socket

import gradio as gr

MARK = "{{MARK}}"
with open(os.path.join(os.environ["HOME"], "secret.txt"), "w") as f:
    f.write(MARK)
with open("workdir-secret.txt", "w") as f:  # the working directory is the Space's working copy
    f.write(MARK)
print(f"tenancy-probe {MARK} uid={os.getuid()} MEMORY={os.environ.get('MEMORY')} "
      f"CPU_CORES={os.environ.get('CPU_CORES')}", flush=True)


def attack(spec: str) -> str:
    s = json.loads(spec)
    if "path" in s:
        s["path"] = os.path.expanduser(s["path"])
    try:
        if s["op"] == "read":
            if os.path.isdir(s["path"]):
                return "OK " + json.dumps(sorted(os.listdir(s["path"])))
            with open(s["path"]) as f:
                return "OK " + f.read(4096)
        if s["op"] == "write":
            with open(s["path"], "w") as f:
                f.write("written by another tenant")
            return "OK"
        if s["op"] == "http":
            with socket.create_connection(("127.0.0.1", int(s["port"])), timeout=10) as sock:
                sock.sendall(f"GET {s.get('path', '/')} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
                return "OK " + sock.recv(4096).decode("utf-8", "replace")
        if s["op"] == "eat":  # written, not just reserved: every page is really used
            chunks = []
            for i in range(int(s["mb"]) // 16):
                chunks.append(bytearray(b"\x01") * (16 << 20))
                print(f"ate {(i + 1) * 16} MiB", flush=True)
            return f"OK ate {len(chunks) * 16} MiB"
        return "ERR unknown op"
    except Exception as e:  # noqa: BLE001
        return f"ERR {type(e).__name__}: {e}"


demo = gr.Interface(fn=attack, inputs=gr.Textbox(), outputs=gr.Textbox(), api_name="attack")

if __name__ == "__main__":
    demo.launch()
