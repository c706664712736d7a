import gradio as gr


def greet(name: str) -> str:
    return f"Hello, {name or 'world'}!"


demo = gr.Interface(fn=greet, inputs=gr.Textbox(label="Name"), outputs=gr.Textbox(label="Greeting"),
                    title="Hello")

if __name__ == "__main__":
    # host and port come from GRADIO_SERVER_NAME / GRADIO_SERVER_PORT, which the platform sets
    demo.launch()
