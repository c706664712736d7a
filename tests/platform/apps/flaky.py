"""A Gradio app that answers, then crashes a moment later: its crashes must count though it answered each time."""

import os
import time

import gradio as gr

print("flaky-app: {{TOKEN}} starting", flush=True)
demo = gr.Interface(fn=lambda name: f"hello {name}", inputs="text", outputs="text", api_name="predict")

if __name__ == "__main__":
    demo.launch(prevent_thread_lock=True)
    print("flaky-app: answering, crashing in 3 s", flush=True)
    time.sleep(3)
    os._exit(3)
