"""spaces: a self-hostable Hugging Face Spaces."""

__version__ = "0.1.0"
