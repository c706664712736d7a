"""The hub: the Hugging Face-compatible API, git smart HTTP and (later) the web pages. Thin edges over services."""
