"""Real Gradio and Streamlit apps through the proxy, driven by their real clients.

Gradio: gradio_client over the queue (SSE) and a file upload, on a public and on a private route (the client's
``x-hf-authorization`` header). Streamlit: the browser's WebSocket ``/_stcore/stream``, a rerun request, and the
app's output coming back over it.
"""

from __future__ import annotations

import sys
import textwrap
import time

import pytest

from proxykit import free_port, start_process, stop_process

GRADIO_APP = """
import os
import gradio as gr

def greet(name):
    return f"Hello {name}!"

def size(path):
    return os.path.getsize(path)

def count(n):
    for i in range(int(n)):
        yield str(i)

with gr.Blocks() as demo:
    name, out = gr.Textbox(), gr.Textbox()
    gr.Button("greet").click(greet, name, out, api_name="greet")
    upload, n = gr.File(type="filepath"), gr.Number()
    gr.Button("size").click(size, upload, n, api_name="size")
    upto, counted = gr.Number(), gr.Textbox()
    gr.Button("count").click(count, upto, counted, api_name="count")

demo.queue().launch(server_name="127.0.0.1", server_port=int(os.environ["PORT"]), show_error=True)
"""

STREAMLIT_APP = """
import streamlit as st
st.title("Hello from streamlit behind the proxy")
"""


@pytest.fixture(scope="module")
def gradio_app(tmp_path_factory):
    pytest.importorskip("gradio")
    d = tmp_path_factory.mktemp("gradio")
    (d / "app.py").write_text(textwrap.dedent(GRADIO_APP))
    port = free_port()
    proc = start_process([sys.executable, "app.py"], port, env={"PORT": str(port), "GRADIO_ANALYTICS_ENABLED": "False"},
                         cwd=d, timeout=180)
    yield ("127.0.0.1", port)
    stop_process(proc)


@pytest.fixture(scope="module")
def streamlit_app(tmp_path_factory):
    pytest.importorskip("streamlit")
    d = tmp_path_factory.mktemp("streamlit")
    (d / "app.py").write_text(textwrap.dedent(STREAMLIT_APP))
    port = free_port()
    proc = start_process([sys.executable, "-m", "streamlit", "run", "app.py", "--server.port", str(port),
                          "--server.address", "127.0.0.1", "--server.headless", "true",
                          "--browser.gatherUsageStats", "false"], port, cwd=d, timeout=120)
    yield ("127.0.0.1", port)
    stop_process(proc)


def test_gradio_client_queue_and_upload_through_the_proxy(proxy, gradio_app, tmp_path):
    from gradio_client import Client, handle_file

    proxy.put("gdemo", "alice/gdemo", gradio_app)
    client = Client(proxy.url("gdemo"), verbose=False, download_files=False)
    assert client.predict("proxy", api_name="/greet") == "Hello proxy!"
    blob = tmp_path / "blob.bin"
    blob.write_bytes(b"x" * 3_000_000)
    assert client.predict(handle_file(str(blob)), api_name="/size") == 3_000_000
    job = client.submit(5, api_name="/count")  # a generator: several SSE messages on the queue stream
    assert job.result(timeout=60) == "4"
    assert [str(x) for x in job.outputs()] == ["0", "1", "2", "3", "4"]
    assert proxy.proxy.activity.last_seen("alice/gdemo") is not None


def test_gradio_client_on_a_private_space_with_a_token(proxy, gradio_app):
    from gradio_client import Client

    proxy.put("gpriv", "alice/gpriv", gradio_app, private=True)
    proxy.controls.tokens.add("hf_member")
    client = Client(proxy.url("gpriv"), token="hf_member", verbose=False, download_files=False)
    assert client.predict("member", api_name="/greet") == "Hello member!"
    with pytest.raises(Exception):
        Client(proxy.url("gpriv"), verbose=False, download_files=False)


def test_streamlit_websocket_through_the_proxy(proxy, streamlit_app):
    import httpx
    from streamlit.proto.BackMsg_pb2 import BackMsg
    from websockets.sync.client import connect

    proxy.put("sdemo", "alice/sdemo", streamlit_app)
    with httpx.Client(timeout=30) as c:
        page = c.get(proxy.url("sdemo"))
        assert page.status_code == 200 and "streamlit" in page.text.lower()
        assert c.get(proxy.url("sdemo", "/_stcore/health")).text == "ok"
    url = proxy.url("sdemo", "/_stcore/stream").replace("http://", "ws://")
    with connect(url, subprotocols=["streamlit"], open_timeout=30, max_size=None) as ws:
        msg = BackMsg()
        msg.rerun_script.query_string = ""
        msg.rerun_script.page_script_hash = ""
        ws.send(msg.SerializeToString())
        received = b""
        deadline = time.monotonic() + 60
        while b"Hello from streamlit behind the proxy" not in received:
            assert time.monotonic() < deadline, "the app's output never came back over the WebSocket"
            received += ws.recv(timeout=60)

