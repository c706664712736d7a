"""The starter Spaces shipped in ``templates/`` (gradio, streamlit, docker, static): listed by the API and the
new-Space form, copied into a new Space on request, and used as build fixtures."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

TEMPLATES_DIR = Path(__file__).resolve().parent.parent / "templates"


@dataclass(frozen=True)
class Template:
    name: str  # folder name, e.g. "gradio"
    title: str
    sdk: str
    path: Path

    @property
    def repo_id(self) -> str:
        return f"templates/{self.name}"

    def files(self) -> dict[str, bytes]:
        return {str(p.relative_to(self.path)): p.read_bytes()
                for p in sorted(self.path.rglob("*")) if p.is_file() and "__pycache__" not in p.parts}


def list_templates(root: Path = TEMPLATES_DIR) -> list[Template]:
    if not root.is_dir():
        return []
    out = []
    for d in sorted(root.iterdir()):
        readme = d / "README.md"
        if d.is_dir() and readme.is_file():
            sdk = next((line.split(":", 1)[1].strip() for line in readme.read_text().splitlines()
                        if line.startswith("sdk:")), d.name)
            out.append(Template(d.name, f"{d.name.capitalize()} starter", sdk, d))
    return out
