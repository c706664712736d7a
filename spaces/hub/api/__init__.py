"""The Hugging Face-compatible REST API, one router per area."""
