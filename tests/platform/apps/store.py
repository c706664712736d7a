"""A Gradio app that keeps a counter in its volume: each start adds one to /data/starts. Endpoints (api_name):
starts (the count this instance read and wrote at its start), read (a file's text or ERR), write ("PATH MB":
writes MB mebibytes of zeros, answers OK or ERR with the errno's name)."""

import errno
import os

import gradio as gr

COUNTER = "/data/starts"
try:
    with open(COUNTER) as f:
        STARTS = int(f.read().strip() or 0) + 1
except FileNotFoundError:
    STARTS = 1
with open(COUNTER, "w") as f:
    f.write(str(STARTS))
print(f"STORE-START {STARTS} {{MARK}}", flush=True)


def starts(_: str) -> str:
    return str(STARTS)


def read(path: str) -> str:
    try:
        with open(path) as f:
            return "OK " + f.read(4096)
    except OSError as e:
        return f"ERR {errno.errorcode.get(e.errno, e.errno)}"


def write(spec: str) -> str:
    path, mb = spec.rsplit(" ", 1)
    try:
        with open(path, "wb") as f:
            for _ in range(int(mb)):
                f.write(b"\0" * (1 << 20))
            f.flush()
            os.fsync(f.fileno())
        return "OK"
    except OSError as e:
        return f"ERR {errno.errorcode.get(e.errno, e.errno)}"


with gr.Blocks() as demo:
    box, out = gr.Textbox(), gr.Textbox()
    gr.Button("starts").click(starts, box, out, api_name="starts")
    gr.Button("read").click(read, box, out, api_name="read")
    gr.Button("write").click(write, box, out, api_name="write")

if __name__ == "__main__":
    demo.launch()
