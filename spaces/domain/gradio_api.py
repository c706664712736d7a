"""A Gradio app's API as its "Use via API" snippets show it: the endpoints and parameters read from the app's
``/gradio_api/info`` (what ``gradio_client``'s ``view_api()`` reads), and their arguments written as code.

The info comes from the Space, which is hostile until proven otherwise, and the snippets are code people copy and
run: nothing the app sent reaches a snippet except as a literal. Endpoint names must look like Gradio's own
(``/greet``), parameter names must be plain identifiers to be used as keywords (else the call is positional), and
values are written back as Python / JSON literals (a string can never end its quotes); shell arguments are quoted.
Too many endpoints or parameters, or oversized examples, are cut to limits a page can show.
"""

from __future__ import annotations

import json
import keyword
import re
import shlex
from dataclasses import dataclass
from typing import Any

#: what one page lists at most; an app with more is cut here (view_api() shows them all)
MAX_ENDPOINTS = 20
MAX_PARAMS = 30
#: an example value longer than this as code is replaced by a plain one of its type
MAX_LITERAL = 300
_API_NAME = re.compile(r"^/[A-Za-z0-9_-]{1,64}$")
_RESERVED = frozenset({"api_name", "fn_index", "result", "client"})


@dataclass(frozen=True)
class Param:
    name: str  # the keyword gradio_client takes ("" when the app gave none usable)
    label: str
    type: str  # the Python type, in words ("str", "float", "filepath")
    example: Any  # a JSON value the app accepts
    file: bool = False  # ``example`` is a URL or path to hand over as a file (handle_file)
    has_default: bool = False


@dataclass(frozen=True)
class Endpoint:
    api_name: str  # "/greet"
    params: tuple[Param, ...] = ()
    returns: tuple[str, ...] = ()  # each output, in words ("Greeting (str)")

    @property
    def by_keyword(self) -> bool:
        names = [p.name for p in self.params]
        return all(names) and len(set(names)) == len(names)

    @property
    def has_files(self) -> bool:
        return any(p.file for p in self.params)

    @property
    def path(self) -> str:
        """The endpoint in a URL (``gradio_api/call/{path}``)."""
        return self.api_name[1:]


def endpoints(info: Any) -> tuple[Endpoint, ...]:
    """The public named endpoints of a ``/gradio_api/info`` answer, in the app's order; anything malformed is
    left out (a malformed answer as a whole gives none)."""
    named = info.get("named_endpoints") if isinstance(info, dict) else None
    if not isinstance(named, dict):
        return ()
    out = []
    for name, spec in named.items():
        if len(out) >= MAX_ENDPOINTS:
            break
        if isinstance(name, str) and _API_NAME.match(name) and isinstance(spec, dict) and _public(spec):
            out.append(Endpoint(name, _params(spec.get("parameters")), _returns(spec.get("returns"))))
    return tuple(out)


def _public(spec: dict) -> bool:
    """gradio 5 says ``show_api``; gradio 6 ``api_visibility`` (public, undocumented or private)."""
    if "api_visibility" in spec:
        return spec["api_visibility"] == "public"
    return spec.get("show_api", True) is not False


def _params(items: Any) -> tuple[Param, ...]:
    if not isinstance(items, list):
        return ()
    out = []
    for item in items[:MAX_PARAMS]:
        if not isinstance(item, dict):
            continue
        name = item.get("parameter_name")
        name = name if isinstance(name, str) and name.isidentifier() and not keyword.iskeyword(name) \
            and name not in _RESERVED and len(name) <= 64 else ""
        kind = _type_words(item.get("python_type"))
        example, file = _example(item.get("example_input"), kind)
        out.append(Param(name=name, label=_words(item.get("label")), type=kind, example=example, file=file,
                         has_default=bool(item.get("parameter_has_default"))))
    return tuple(out)


def _returns(items: Any) -> tuple[str, ...]:
    if not isinstance(items, list):
        return ()
    out = []
    for item in items[:MAX_PARAMS]:
        if isinstance(item, dict):
            label = _words(item.get("label")) or "output"
            out.append(f"{label} ({_type_words(item.get('python_type'))})")
    return tuple(out)


def _words(value: Any, limit: int = 60) -> str:
    return " ".join(value.split())[:limit] if isinstance(value, str) else ""


def _type_words(python_type: Any) -> str:
    kind = python_type.get("type") if isinstance(python_type, dict) else None
    return _words(kind) or "Any"


def _example(value: Any, kind: str) -> tuple[Any, bool]:
    """(the value to show, whether it is a file's URL). A Gradio file example is ``{"path" or "url": ...,
    "meta": {"_type": "gradio.FileData"}}``; what cannot be written back safely becomes a plain value."""
    if isinstance(value, dict) and isinstance(value.get("meta"), dict) \
            and value["meta"].get("_type") == "gradio.FileData":
        where = value.get("url") or value.get("path")
        if isinstance(where, str) and len(where) <= MAX_LITERAL:
            return where, True
        return None, False
    if not _plain(value, 0) or len(json.dumps(value)) > MAX_LITERAL:
        return _blank(kind), False
    return value, False


def _plain(value: Any, depth: int) -> bool:
    """JSON data of reasonable depth, nothing else (no NaN: it is not a literal in either language)."""
    if depth > 6:
        return False
    if value is None or isinstance(value, (bool, int, str)):
        return True
    if isinstance(value, float):
        return value == value and value not in (float("inf"), float("-inf"))
    if isinstance(value, list):
        return all(_plain(v, depth + 1) for v in value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and _plain(v, depth + 1) for k, v in value.items())
    return False


def _blank(kind: str) -> Any:
    return {"str": "", "int": 0, "float": 0.0, "bool": False}.get(kind)


# ---- writing the arguments as code ----------------------------------------------------------------------------

def python_args(ep: Endpoint) -> str:
    """``client.predict(...)``'s arguments: ``name="Hello!!", api_name="/greet"``."""
    parts = []
    for p in ep.params:
        value = f"handle_file({py_literal(p.example)})" if p.file else py_literal(p.example)
        parts.append(f"{p.name}={value}" if ep.by_keyword else value)
    parts.append(f"api_name={py_literal(ep.api_name)}")
    return ", ".join(parts)


def py_literal(value: Any) -> str:
    """A Python literal of a JSON value, strings in double quotes as Gradio's own snippets write them (a JSON
    string without ASCII escaping is a valid Python string literal)."""
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, list):
        return "[" + ", ".join(py_literal(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{py_literal(k)}: {py_literal(v)}" for k, v in value.items()) + "}"
    return repr(value)  # None, bool, int, float


def js_args(ep: Endpoint) -> str:
    """``client.predict("/greet", ...)``'s second argument: an object by name, or an array."""
    def value(p: Param) -> str:
        return f"handle_file({_json(p.example)})" if p.file else _json(p.example)
    if ep.by_keyword:
        return "{ " + ", ".join(f"{p.name}: {value(p)}" for p in ep.params) + " }"
    return "[" + ", ".join(value(p) for p in ep.params) + "]"


def curl_data(ep: Endpoint) -> str:
    """The body of ``POST gradio_api/call/{name}``, quoted for a shell."""
    data = [{"path": p.example, "meta": {"_type": "gradio.FileData"}} if p.file else p.example for p in ep.params]
    return shlex.quote(json.dumps({"data": data}))


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=True)  # \u2028 and friends stay escapes in a JavaScript string
