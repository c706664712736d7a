"""The starter Spaces shipped in ``templates/`` (gradio, streamlit, docker, static): listed by the API and the
new-Space form, copied into a new Space on request, and used as build fixtures."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from spaces.storage.gitrepo import Addition

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

    def additions(self, title: str, files: dict[str, bytes] | None = None) -> list[Addition]:
        """``files`` (the template Space's, by default this folder's) with the README retitled ``title``."""
        files = self.files() if files is None else files
        return [Addition(path, _retitle(data, title) if path == "README.md" else data) for path, data in files.items()]

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


def _retitle(readme: bytes, title: str) -> bytes:
    """Set ``title:`` in the README front matter (only there), so the card shows the new Space's name."""
    text = readme.decode("utf-8", errors="replace")
    match = re.match(r"^---\r?\n(.*?)\r?\n---", text, re.S)
    if not match:
        return readme
    front = match.group(1)
    new_front, n = re.subn(r"(?m)^title:.*$", f"title: {title}", front, count=1)
    if n == 0:
        new_front = f"title: {title}\n{front}"
    return (text[: match.start(1)] + new_front + text[match.end(1):]).encode()


def template_files(template: Template, title: str) -> list[Addition]:
    return template.additions(title)


def find_template(name_or_repo_id: str, root: Path = TEMPLATES_DIR) -> Template | None:
    """The template a client names by ``repoId`` (what huggingface_hub sends) or short name."""
    for t in list_templates(root):
        if name_or_repo_id in (t.repo_id, t.name):
            return t
    return None
