"""The gradio template's greeting app with a marker, so a test can tell which revision answers."""

import gradio as gr

print("greet-app: {{MARK}} starting", flush=True)


def greet(name: str) -> str:
    return f"{{MARK}}: Hello, {name or 'world'}!"


demo = gr.Interface(fn=greet, inputs=gr.Textbox(label="Name"), outputs=gr.Textbox(label="Greeting"),
                    title="Greet {{MARK}}", api_name="predict")

if __name__ == "__main__":
    demo.launch()
