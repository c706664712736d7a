"""Loads a file from a model repo on the hub it runs on, as unchanged demo code does: huggingface_hub finds the
hub through HF_ENDPOINT, and a token only through a secret HF_TOKEN the owner set."""

import os

import gradio as gr
from huggingface_hub import hf_hub_download

try:
    TEXT = open(hf_hub_download(os.environ["MODEL_ID"], "hello.txt")).read()
except Exception as exc:  # noqa: BLE001 - shown to the test, which expects it for a private model and no token
    TEXT = f"failed: {type(exc).__name__}"
print(f"hub-model-app: endpoint={os.environ.get('HF_ENDPOINT')} read={TEXT!r}", flush=True)


def read(_: str) -> str:
    return TEXT


demo = gr.Interface(fn=read, inputs=gr.Textbox(), outputs=gr.Textbox(), api_name="read")

if __name__ == "__main__":
    demo.launch()
