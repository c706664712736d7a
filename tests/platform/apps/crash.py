"""A Gradio app that fails at import: the platform must show why (RUNTIME_ERROR with this log's tail)."""

import sys

print("crash-app: starting, about to fail", flush=True)
print("crash-app: a line on stderr", file=sys.stderr, flush=True)
raise RuntimeError("{{TOKEN}}: this app fails on purpose at import")
