"""The greeting app after {{DELAY}} s of loading: meanwhile the App tab's frame shows the proxy's waiting page."""

import time

print("slow-app: loading", flush=True)
time.sleep({{DELAY}})

import gradio as gr  # noqa: E402

demo = gr.Interface(fn=lambda name: f"Hello, {name}!", inputs=gr.Textbox(label="Name"),
                    outputs=gr.Textbox(label="Greeting"), title="Slow start", api_name="greet")

if __name__ == "__main__":
    demo.launch()
