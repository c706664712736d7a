"""Syntax highlighting of the file view, server side with Pygments (no script in the page, nothing to download).

``highlight_lines(path, text)`` returns one HTML fragment per line of the file: Pygments' ``HtmlFormatter`` closes
its spans at each line end, so every fragment stands alone and the page keeps one element per line (the line
numbers are CSS counters over them). Pygments escapes every character of the text it is given; a file it has no
lexer for, or one past ``HIGHLIGHT_BYTES``, is escaped by the template as plain text instead (highlighting is
linear but not cheap: about 1 s per MiB of Python on this machine class).
"""

from __future__ import annotations

from markupsafe import Markup
from pygments import highlight
from pygments.formatters import HtmlFormatter
from pygments.lexers import get_lexer_for_filename
from pygments.util import ClassNotFound

HIGHLIGHT_BYTES = 256 * 1024
_FORMATTER = HtmlFormatter(nowrap=True)


def highlight_lines(path: str, text: str) -> list[Markup] | None:
    """The lines of ``text`` as highlighted HTML, or None when it is left plain (no lexer, or too large)."""
    if len(text) > HIGHLIGHT_BYTES:
        return None
    try:
        lexer = get_lexer_for_filename(path.rsplit("/", 1)[-1], stripnl=False, ensurenl=False)
    except ClassNotFound:
        return None
    if lexer.name == "Text only":
        return None
    html = highlight(text, lexer, _FORMATTER)
    lines = html.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return [Markup(line) for line in lines]  # noqa: S704 - Pygments escaped the text (module docstring)
