"""Reads model files that README ``preload_from_hub`` put in the app's cache at build time: offline, so the hub is
never asked (a download would fail anyway: the model is private and the app has no token)."""

import os

import gradio as gr
from huggingface_hub import constants, hf_hub_download

# offline: the constant, not only the variable (the app may be forked from a process that imported the client)
os.environ["HF_HUB_OFFLINE"] = "1"
constants.HF_HUB_OFFLINE = True


def read(name: str) -> str:
    """A model file, or with ``dataset:`` a file of the dataset DATASET_ID."""
    kind, _, file = name.rpartition(":")
    repo_id = os.environ["DATASET_ID"] if kind == "dataset" else os.environ["MODEL_ID"]
    try:
        return open(hf_hub_download(repo_id, file, repo_type=kind or None)).read()
    except Exception as exc:  # noqa: BLE001 - shown to the test
        return f"failed: {type(exc).__name__}"


print(f"preload-app: weights={read('weights.txt')!r}", flush=True)
demo = gr.Interface(fn=read, inputs=gr.Textbox(), outputs=gr.Textbox(), api_name="read")

if __name__ == "__main__":
    demo.launch()
