"""README.md front matter -> Space configuration, and what a Space should show when that configuration is unusable.

A Space is configured by the YAML block at the top of its README.md (wire reference §8.1). This module:

* splits the front matter off and parses it (:func:`parse_readme`), keeping the raw mapping to serve as
  ``cardData`` and a line map so messages can say "README.md line 4";
* checks it and builds a :class:`SpaceConfig` (:func:`check_card`, :func:`config_from_card`); problems that make
  the Space unusable are errors, cosmetic or ignored keys are warnings;
* decides the stage of a repo from its README and file list (:func:`evaluate`): ``CONFIG_ERROR``,
  ``NO_APP_FILE`` or ready to build;
* answers ``POST /api/validate-yaml`` (:func:`validate_yaml_for_api`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import yaml

from spaces.domain.hardware import FLAVORS
from spaces.domain.naming import validate_path_in_repo
from spaces.domain.stages import SpaceStage
from spaces.errors import BadRequest, InvalidPath

SDKS = ("gradio", "streamlit", "docker", "static")
COLORS = ("red", "yellow", "green", "blue", "indigo", "purple", "pink", "gray")
DEFAULT_PYTHON = "3.10"
DEFAULT_STARTUP_TIMEOUT_S = 30 * 60
_PORTS = {"gradio": 7860, "streamlit": 8501}  # fixed by the SDK image; docker reads app_port (default 7860)
_DEFAULT_APP_FILE = {"gradio": "app.py", "streamlit": "app.py", "static": "index.html"}
# custom_headers: only the cross-origin isolation headers are honoured, with their legal values
_HEADERS = {
    "cross-origin-embedder-policy": ("require-corp", "credentialless", "unsafe-none"),
    "cross-origin-opener-policy": ("same-origin", "same-origin-allow-popups", "unsafe-none"),
    "cross-origin-resource-policy": ("same-site", "same-origin", "cross-origin"),
}

# reason codes recorded with the stage
REASON_OK = "ok"
REASON_MISSING_README = "missing_readme"
REASON_MISSING_SDK = "missing_readme_sdk"
REASON_YAML = "yaml_error"
REASON_UNKNOWN_SDK = "unknown_sdk"
REASON_INVALID = "invalid_config"
REASON_NO_APP_FILE = "missing_app_file"
REASON_NO_DOCKERFILE = "missing_dockerfile"


#: Bounds on what a README's front matter may cost to read. A Space's README is written by a stranger: YAML aliases
#: let ~1 KB stand for billions of values (the "billion laughs"), and every nesting level is a Python stack frame.
#: Real front matter is a few hundred bytes, a few levels deep and uses no aliases, so the bounds are generous.
MAX_FRONT_MATTER_BYTES = 64 * 1024
MAX_FRONT_MATTER_DEPTH = 32
#: values (mappings, lists, scalars) and characters the front matter holds once every alias is copied where used
MAX_FRONT_MATTER_VALUES = 20_000
MAX_FRONT_MATTER_CHARS = 4 * MAX_FRONT_MATTER_BYTES


class _LimitExceeded(yaml.YAMLError):
    """A front matter bound was passed; ``problem`` names it and ``problem_mark`` says where."""

    def __init__(self, problem: str, mark: yaml.Mark | None) -> None:
        super().__init__(problem)
        self.problem, self.problem_mark = problem, mark


class _CardLoader(yaml.SafeLoader):
    """SafeLoader without timestamp resolution (``date: 2024-01-01`` stays a string) and with bounded composing.

    Bounds are checked while the node graph is composed, before anything is constructed: nesting depth before each
    level is entered (so 5,000 ``[`` never reach Python's recursion limit), and the *expanded* size of every node
    once it is complete (an alias counts as a full copy of its anchor, which is what JSON-serialising cardData or
    printing a value would cost). An alias to a node still being composed (``&a [*a]``) is refused: cardData must
    be a tree. So a bomb stops after at most ``MAX_FRONT_MATTER_VALUES`` nodes of work, in a few milliseconds.
    """

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0
        self._sizes: dict[int, tuple[int, int]] = {}  # id(node) -> (values, characters) once expanded

    def fetch_flow_collection_start(self, token_class: type) -> None:
        # The scanner keeps one pending "simple key" per open `[`/`{` and looks at all of them for every token:
        # 5,000 `[` cost a quadratic ~0.3 s before the composer ever sees a level, so flow depth stops here.
        if self.flow_level >= MAX_FRONT_MATTER_DEPTH:
            raise _LimitExceeded(f"it is nested deeper than {MAX_FRONT_MATTER_DEPTH} levels (the limit)",
                                 self.get_mark())
        super().fetch_flow_collection_start(token_class)

    def compose_node(self, parent: yaml.Node | None, index: object) -> yaml.Node:
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            target = self.anchors.get(event.anchor)
            if target is not None and id(target) not in self._sizes:
                raise _LimitExceeded(f"the alias *{event.anchor} refers to a value that contains it (a recursive "
                                     "alias)", event.start_mark)
        self._depth += 1
        try:
            if self._depth > MAX_FRONT_MATTER_DEPTH:
                raise _LimitExceeded(f"it is nested deeper than {MAX_FRONT_MATTER_DEPTH} levels (the limit)",
                                     self.peek_event().start_mark)
            node = super().compose_node(parent, index)
        finally:
            self._depth -= 1
        self._measure(node)
        return node

    def _measure(self, node: yaml.Node) -> None:
        if id(node) in self._sizes:  # an alias: its anchor was measured (and found in bounds) when it was composed
            return
        if isinstance(node, yaml.ScalarNode):
            values, chars = 1, len(node.value)
        else:
            children = node.value if isinstance(node, yaml.SequenceNode) else [n for kv in node.value for n in kv]
            sizes = [self._sizes[id(child)] for child in children]
            values, chars = 1 + sum(v for v, _ in sizes), sum(c for _, c in sizes)
        self._sizes[id(node)] = (values, chars)
        if values > MAX_FRONT_MATTER_VALUES:
            raise _LimitExceeded(f"it expands to more than {MAX_FRONT_MATTER_VALUES} values once its aliases are "
                                 "copied where they are used (the limit)", node.start_mark)
        if chars > MAX_FRONT_MATTER_CHARS:
            raise _LimitExceeded(f"it expands to more than {MAX_FRONT_MATTER_CHARS} characters once its aliases are "
                                 "copied where they are used (the limit)", node.start_mark)


def _no_timestamp(loader: _CardLoader, node: yaml.Node) -> None:
    # PyYAML's own constructor crashes (AttributeError) on a malformed `!!timestamp`, and a date is not JSON anyway
    raise yaml.constructor.ConstructorError(None, None, "explicit `!!timestamp` values are not supported; write the "
                                            "date as a plain string", node.start_mark)


_CardLoader.add_constructor("tag:yaml.org,2002:timestamp", _no_timestamp)
_CardLoader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


@dataclass(frozen=True)
class ConfigProblem:
    """Why a README is unusable: a message for people, the key and README line (1-based) when known, a reason code."""

    message: str
    key: str | None = None
    line: int | None = None
    reason: str = REASON_INVALID


@dataclass(frozen=True)
class CardParse:
    """Result of :func:`parse_readme`. ``data`` is the raw mapping (``cardData``); ``error`` is set when broken."""

    data: dict[str, Any]
    error: ConfigProblem | None = None
    #: README line number (1-based) of the first YAML line; 0 when there is no front matter
    first_line: int = 0
    yaml_lines: tuple[str, ...] = ()

    def line_of(self, key: str) -> int | None:
        """README line where top-level ``key:`` appears, found by a cheap scan (no YAML position tracking)."""
        pattern = re.compile(rf"^{re.escape(key)}\s*:")
        for i, text in enumerate(self.yaml_lines):
            if pattern.match(text):
                return self.first_line + i
        return None

    def raw_value(self, key: str) -> str | None:
        """The value text of a one-line ``key: value`` as written (so ``3.10`` is not the float 3.1)."""
        line = self.line_of(key)
        if line is None:
            return None
        text = self.yaml_lines[line - self.first_line].split(":", 1)[1]
        return re.sub(r"\s+#.*$", "", text).strip().strip("'\"") or None


@dataclass(frozen=True)
class Preload:
    """One ``preload_from_hub`` entry: ``"repo"``, ``"repo f1,f2"`` or ``"repo f1,f2 <commit>"``."""

    repo_id: str
    files: tuple[str, ...] = ()
    revision: str | None = None
    repo_type: str = "model"  # "datasets/owner/name" in the entry names a dataset

    @property
    def text(self) -> str:
        """The entry written back in its README form (what a BuildPlan carries)."""
        name = f"datasets/{self.repo_id}" if self.repo_type == "dataset" else self.repo_id
        return " ".join([name, *([",".join(self.files) or "*"] if self.files or self.revision else []),
                         *([self.revision] if self.revision else [])])


def parse_preload(entry: str) -> Preload | None:
    """One ``preload_from_hub`` line, or None when it is not ``repo [f1,f2] [revision]``. A ``datasets/``
    prefix names a dataset (``models/`` a model, the default); ``*`` as the file list means every file."""
    parts = entry.split()
    if not 1 <= len(parts) <= 3:
        return None
    name, repo_type = parts[0], "model"
    for prefix, kind in (("datasets/", "dataset"), ("models/", "model")):
        if name.startswith(prefix) and name.count("/") == 2:
            name, repo_type = name[len(prefix):], kind
    if name.count("/") > 1 or not name.strip("/") or name.startswith("/") or name.endswith("/"):
        return None
    files = tuple(f for f in parts[1].split(",") if f and f != "*") if len(parts) > 1 else ()
    return Preload(name, files, parts[2] if len(parts) > 2 else None, repo_type)


@dataclass(frozen=True)
class SpaceConfig:
    """The usable configuration of a Space. ``app_port`` is the port the app listens on (None for static)."""

    sdk: str
    title: str
    sdk_version: str | None = None
    python_version: str = DEFAULT_PYTHON
    app_file: str | None = None
    app_port: int | None = None
    emoji: str | None = None
    colorFrom: str | None = None
    colorTo: str | None = None
    short_description: str | None = None
    tags: tuple[str, ...] = ()
    models: tuple[str, ...] = ()
    datasets: tuple[str, ...] = ()
    suggested_hardware: str | None = None
    startup_duration_timeout: int = DEFAULT_STARTUP_TIMEOUT_S
    base_path: str | None = None
    pinned: bool = False
    license: str | None = None
    duplicated_from: str | None = None
    disable_embedding: bool = False
    fullWidth: bool = True
    header: str = "default"
    thumbnail: str | None = None
    app_build_command: str | None = None
    preload_from_hub: tuple[Preload, ...] = ()
    custom_headers: Mapping[str, str] = field(default_factory=dict)
    hf_oauth: bool = False
    hf_oauth_scopes: tuple[str, ...] = ()
    hf_oauth_expiration_minutes: int = 480


@dataclass(frozen=True)
class CardCheck:
    """Result of :func:`check_card`: a config when there are no problems, plus warnings either way."""

    config: SpaceConfig | None
    problems: list[ConfigProblem]
    warnings: list[str]


class SpaceConfigError(BadRequest):
    """Raised by :func:`config_from_card`; ``problems`` and ``warnings`` hold the details."""

    code = "InvalidSpaceConfig"

    def __init__(self, problems: list[ConfigProblem], warnings: list[str]) -> None:
        super().__init__("\n".join(p.message for p in problems))
        self.problems, self.warnings = problems, warnings


@dataclass(frozen=True)
class Evaluation:
    """What a repo's README and files mean: ``stage`` None means "config fine, ready to build"."""

    config: SpaceConfig | None
    card: dict[str, Any]
    stage: SpaceStage | None
    reason: str
    message: str
    warnings: list[str] = field(default_factory=list)


def parse_readme(text: str) -> CardParse:
    """Split the ``---`` front matter off a README and parse it as YAML.

    No front matter gives ``data={}`` and no error. Broken YAML, an unclosed block or a non-mapping gives an
    ``error`` whose message names the README line (counting the opening ``---`` as line 1 when it is first).
    """
    lines = text.lstrip("\ufeff").splitlines()
    start = 0
    while start < len(lines) and not lines[start].strip():
        start += 1
    if start >= len(lines) or lines[start].rstrip() != "---":
        return CardParse({})
    end = next((j for j in range(start + 1, len(lines)) if lines[j].rstrip() == "---"), None)
    if end is None:
        msg = f"README.md line {start + 1}: the YAML front matter starting here is not closed by a `---` line."
        return CardParse({}, ConfigProblem(msg, line=start + 1, reason=REASON_YAML))
    block = tuple(lines[start + 1 : end])
    first = start + 2
    text = "\n".join(block)
    if len(text.encode("utf-8", "surrogatepass")) > MAX_FRONT_MATTER_BYTES:
        msg = (f"README.md line {start + 1}: the YAML front matter is larger than {MAX_FRONT_MATTER_BYTES // 1024} "
               "KiB (the limit); keep long text in the body of the README, below the closing `---`.")
        return CardParse({}, ConfigProblem(msg, line=start + 1, reason=REASON_YAML), first, block)
    try:
        data = _json_safe(yaml.load(text, Loader=_CardLoader))  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
        line = first + mark.line if mark is not None else None
        problem = getattr(exc, "problem", None) or str(exc)
        where = f"README.md line {line}" if line else "README.md"
        msg = f"{where}: the YAML front matter is invalid: {problem}."
        return CardParse({}, ConfigProblem(msg, line=line, reason=REASON_YAML), first, block)
    except (ValueError, TypeError) as exc:  # a value the constructor or JSON cannot hold (see _json_safe)
        msg = f"README.md line {start + 1}: the YAML front matter holds a value that cannot be used: {exc}."
        return CardParse({}, ConfigProblem(msg, line=start + 1, reason=REASON_YAML), first, block)
    if data is None:
        data = {}
    if not isinstance(data, dict):
        msg = (
            f"README.md line {start + 1}: the front matter must be a mapping of `key: value` lines, "
            f"not a {type(data).__name__}."
        )
        return CardParse({}, ConfigProblem(msg, line=start + 1, reason=REASON_YAML), first, block)
    return CardParse(data, None, first, block)


def _json_safe(data: Any) -> Any:
    """The front matter as plain JSON values, as cardData is stored and served.

    SafeLoader still builds what JSON cannot carry (``!!binary`` bytes, ``!!set``, an explicit ``!!timestamp``,
    ``.nan``/``.inf``, keys that are not strings): a round trip through JSON turns keys into strings and refuses
    the rest with ValueError/TypeError, so the database and the API never see them. The size is already bounded.
    """
    try:
        return json.loads(json.dumps(data, allow_nan=False))
    except TypeError as exc:
        raise TypeError(f"{exc}; use plain strings, numbers, lists and mappings") from None
    except ValueError:
        raise ValueError("nan and infinite numbers are not allowed") from None


def _show(value: Any, width: int = 60) -> str:
    """``repr(value)`` cut to ``width`` characters: messages stay short whatever a README holds."""
    text = repr(value)
    return text if len(text) <= width else text[: width - 3] + "..."


_DURATION = re.compile(r"^(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$")


def parse_duration(text: str) -> int:
    """``"30m"``, ``"1h"``, ``"90s"``, ``"1h30m"`` (also days, ``"1d"``) -> seconds. Raises ValueError."""
    m = _DURATION.match(text.strip().lower()) if isinstance(text, str) else None
    if not m or not any(m.groups()):
        raise ValueError(text)
    d, h, mi, s = (int(g or 0) for g in m.groups())
    return ((d * 24 + h) * 60 + mi) * 60 + s


class _Checker:
    """Reads keys out of the card, collecting errors and warnings with the README line of each key."""

    def __init__(self, data: Mapping[str, Any], parsed: CardParse | None) -> None:
        self.data, self.parsed = data, parsed
        self.problems: list[ConfigProblem] = []
        self.warnings: list[str] = []

    def _at(self, key: str) -> tuple[int | None, str]:
        line = self.parsed.line_of(key) if self.parsed else None
        return line, (f"README.md line {line}: " if line else "README.md: ")

    def error(self, key: str, text: str, reason: str = REASON_INVALID) -> None:
        line, prefix = self._at(key)
        self.problems.append(ConfigProblem(prefix + text, key, line, reason))

    def warn(self, key: str, text: str) -> None:
        self.warnings.append(self._at(key)[1] + text)

    def get(self, key: str) -> Any:
        return self.data.get(key)  # `key:` with no value is None, the same as absent

    def text(self, key: str, *, cosmetic: bool = False) -> str | None:
        value = self.get(key)
        if value is None or isinstance(value, str):
            return value
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return str(value)
        (self.warn if cosmetic else self.error)(key, f"`{key}` must be a string, got {_show(value)}.")
        return None

    def version(self, key: str) -> str | None:
        value = self.get(key)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            raw = self.parsed.raw_value(key) if self.parsed else None
            value = raw or str(value)
            self.warn(key, f"`{key}` is written as a number; quote it (`{key}: \"{value}\"`) so YAML keeps it as is.")
        if value is not None and not isinstance(value, str):
            self.error(key, f"`{key}` must be a version string, got {_show(value)}.")
            return None
        return value

    def flag(self, key: str, default: bool) -> bool:
        value = self.get(key)
        if value is None:
            return default
        if not isinstance(value, bool):
            self.error(key, f"`{key}` must be true or false, got {_show(value)}.")
            return default
        return value

    def items(self, key: str) -> tuple[str, ...]:
        value = self.get(key)
        if value is None:
            return ()
        if not isinstance(value, list) or any(isinstance(v, (dict, list)) or v is None for v in value):
            self.error(key, f"`{key}` must be a list of strings (e.g. `{key}: [a, b]`), got {_show(value)}.")
            return ()
        return tuple(str(v) for v in value)

    def integer(self, key: str, default: int, low: int, high: int) -> int:
        value = self.get(key)
        if value is None:
            return default
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            self.error(key, f"`{key}` must be an integer between {low} and {high}, got {_show(value)}.")
            return default
        return value


def _preloads(c: _Checker) -> tuple[Preload, ...]:
    out = []
    for entry in c.items("preload_from_hub"):
        found = parse_preload(entry)
        if found is None:
            c.error("preload_from_hub", f"`preload_from_hub` entry {_show(entry)} must be 'repo', 'repo f1,f2' or "
                    "'repo f1,f2 <commit>'.")
            continue
        out.append(found)
    return tuple(out)


def _headers(c: _Checker) -> dict[str, str]:
    value = c.get("custom_headers")
    if value is None:
        return {}
    if not isinstance(value, dict):
        c.error("custom_headers", f"`custom_headers` must be a mapping of header: value, got {_show(value)}.")
        return {}
    out = {}
    for name, val in value.items():
        name, val = str(name).lower(), str(val).lower()
        if name not in _HEADERS or val not in _HEADERS[name]:
            c.warn("custom_headers", f"`custom_headers` {name}: {val} is ignored; only {', '.join(_HEADERS)} "
                   "with their standard values are supported.")
        else:
            out[name] = val
    return out


def check_card(data: Mapping[str, Any], default_title: str, parsed: CardParse | None = None) -> CardCheck:
    """Check every known key of a card and build the :class:`SpaceConfig` when nothing is wrong.

    Errors (``problems``) make the Space unusable: missing or unknown ``sdk``, wrong types, bad ``python_version``,
    unknown ``suggested_hardware``, bad ``startup_duration_timeout``, an invalid ``app_file`` path. Unknown or
    cosmetic mistakes (colors, emoji, keys ignored for this SDK) are ``warnings``. Pass ``parsed`` so messages can
    name the README line.
    """
    c = _Checker(data, parsed)
    sdk = c.get("sdk")
    if sdk is None:
        c.problems.append(ConfigProblem("README.md front matter has no `sdk:` key; add `sdk: gradio` (or streamlit, "
                                        "docker, static)", "sdk", None, REASON_MISSING_SDK))
    elif sdk not in SDKS:
        c.error("sdk", f"`sdk: {sdk}` is not a supported SDK; use one of {', '.join(SDKS)}.", REASON_UNKNOWN_SDK)
        sdk = None
    elif sdk == "streamlit":
        c.warn("sdk", "`sdk: streamlit` is deprecated (still supported); new Streamlit apps should use docker.")

    python_version = c.version("python_version") or DEFAULT_PYTHON
    if not re.fullmatch(r"3\.\d{1,2}(\.\d{1,3})?", python_version):
        c.error("python_version", f"`python_version` must look like 3.x or 3.x.y (e.g. \"3.10\"), "
                f"got {_show(python_version)}.")
    sdk_version = c.version("sdk_version")
    # goes into `pip install gradio=={sdk_version}`: only version characters, nothing a shell or pip could misread
    if sdk_version is not None and not re.fullmatch(r"[0-9][0-9A-Za-z.+\-]*", sdk_version):
        c.error("sdk_version", f"`sdk_version` must be a version like 4.44.1, got {_show(sdk_version)}.")

    app_file = c.text("app_file")
    if app_file is not None:
        try:
            validate_path_in_repo(app_file)
        except InvalidPath as exc:
            c.error("app_file", f"`app_file` is not a valid path: {exc.message}")
        if sdk == "docker":
            c.warn("app_file", "`app_file` is ignored for docker Spaces; the Dockerfile decides what runs.")
            app_file = None
        elif sdk in ("gradio", "streamlit") and not app_file.endswith(".py"):
            c.warn("app_file", f"`app_file: {app_file}` is not a .py file; {sdk} Spaces run a Python file.")
    elif sdk in _DEFAULT_APP_FILE:
        app_file = _DEFAULT_APP_FILE[sdk]

    app_port = c.integer("app_port", 7860, 1, 65535)
    if c.get("app_port") is not None and sdk in _PORTS:
        c.warn("app_port", f"`app_port` is only used by docker Spaces; {sdk} apps listen on {_PORTS[sdk]}.")
    port = app_port if sdk == "docker" else _PORTS.get(sdk or "")

    hardware = c.text("suggested_hardware")
    if hardware is not None and hardware not in FLAVORS:
        c.error("suggested_hardware", f"`suggested_hardware: {hardware}` is not a known flavor; use one of "
                f"{', '.join(FLAVORS)}.")
    elif hardware == "zero-a10g" and sdk not in (None, "gradio"):
        c.warn("suggested_hardware", "`suggested_hardware: zero-a10g` (ZeroGPU) works with gradio Spaces only.")

    timeout = DEFAULT_STARTUP_TIMEOUT_S
    raw_timeout = c.get("startup_duration_timeout")
    if raw_timeout is not None:
        try:
            timeout = parse_duration(raw_timeout)
            if timeout <= 0:
                raise ValueError(raw_timeout)
        except ValueError:
            c.error("startup_duration_timeout", "`startup_duration_timeout` must be a duration like 30m, 1h, 90s "
                    f"or 1h30m, got {_show(raw_timeout)}.")

    base_path = c.text("base_path")
    if base_path is not None and not base_path.startswith("/"):
        c.error("base_path", f"`base_path` must start with '/', got {_show(base_path)}.")
    if base_path is not None and sdk == "static":
        c.warn("base_path", "`base_path` is ignored for static Spaces; use `app_file` instead.")
    build_command = c.text("app_build_command")
    if build_command is not None and sdk not in (None, "static"):
        c.warn("app_build_command", "`app_build_command` is only used by static Spaces; it is ignored.")

    colors = {}
    for key in ("colorFrom", "colorTo"):
        colors[key] = c.text(key, cosmetic=True)
        if colors[key] is not None and colors[key] not in COLORS:
            c.warn(key, f"`{key}: {colors[key]}` is not a known color; use one of {', '.join(COLORS)}.")
            colors[key] = None
    header = c.text("header", cosmetic=True) or "default"
    if header not in ("mini", "default"):
        c.warn("header", f"`header: {header}` is not known; use mini or default.")
        header = "default"
    if c.get("suggested_storage") is not None:
        c.warn("suggested_storage", "`suggested_storage` is ignored: persistent storage tiers no longer exist.")

    config_kwargs = dict(
        title=c.text("title") or default_title, sdk_version=sdk_version, python_version=python_version,
        app_file=app_file, app_port=port, emoji=c.text("emoji", cosmetic=True), **colors,
        short_description=c.text("short_description"), tags=c.items("tags"), models=c.items("models"),
        datasets=c.items("datasets"), suggested_hardware=hardware, startup_duration_timeout=timeout,
        base_path=base_path, pinned=c.flag("pinned", False), license=c.text("license", cosmetic=True),
        duplicated_from=c.text("duplicated_from", cosmetic=True), disable_embedding=c.flag("disable_embedding", False),
        fullWidth=c.flag("fullWidth", True), header=header, thumbnail=c.text("thumbnail", cosmetic=True),
        app_build_command=build_command, preload_from_hub=_preloads(c), custom_headers=_headers(c),
        hf_oauth=c.flag("hf_oauth", False), hf_oauth_scopes=c.items("hf_oauth_scopes"),
        hf_oauth_expiration_minutes=c.integer("hf_oauth_expiration_minutes", 480, 1, 43200),
    )
    config = SpaceConfig(sdk=sdk, **config_kwargs) if sdk and not c.problems else None
    return CardCheck(config, c.problems, c.warnings)


def config_from_card(data: Mapping[str, Any], default_title: str, parsed: CardParse | None = None) -> SpaceConfig:
    """Build the :class:`SpaceConfig` or raise :class:`SpaceConfigError` listing every problem.

    Warnings are dropped here; use :func:`check_card` (or :func:`evaluate`) to get them.
    """
    result = check_card(data, default_title, parsed)
    if result.config is None:
        raise SpaceConfigError(result.problems, result.warnings)
    return result.config


def _missing_app(config: SpaceConfig, files: set[str]) -> tuple[str, str] | None:
    """(reason, message) when the file the SDK needs is absent, else None."""
    root = sorted(f for f in files if "/" not in f)
    if config.sdk == "docker":
        if "Dockerfile" in files:
            return None
        near = [f for f in files if f.rsplit("/", 1)[-1].lower() == "dockerfile"]
        hint = f" Found `{sorted(near)[0]}`; it must be named exactly `Dockerfile` at the root." if near else ""
        return REASON_NO_DOCKERFILE, "docker Spaces need a Dockerfile at the repository root." + hint
    if config.sdk == "static" and config.app_build_command:
        return None  # app_file lives in the build output, not in the repo
    assert config.app_file is not None
    if config.app_file in files:
        return None
    verb = "serve" if config.sdk == "static" else "run"
    ext = ".html" if config.sdk == "static" else ".py"
    found = [f for f in root if f.endswith(ext)][:5]
    hint = f" Files at the root that could be it: {', '.join(found)}." if found else ""
    return REASON_NO_APP_FILE, (
        f"{config.sdk} Spaces {verb} `{config.app_file}`, which is not in the repository. Add it (upload it or "
        f"git push), or set `app_file:` in README.md to your main file.{hint}"
    )


def evaluate(readme_text: str | None, files: set[str], default_title: str) -> Evaluation:
    """Decide what a repo at one revision means for its Space.

    * no README.md, no ``sdk``, broken YAML, unknown sdk or invalid keys -> ``CONFIG_ERROR``;
    * valid config but the SDK's entry file is missing (``app_file``, default app.py / index.html, or a root
      ``Dockerfile`` for docker) -> ``NO_APP_FILE`` (what a freshly created Space shows);
    * otherwise ``stage=None``: ready to build.
    """
    if readme_text is None:
        msg = ("This Space has no README.md. Add one that starts with front matter such as:\n"
               "---\nsdk: gradio\n---")
        return Evaluation(None, {}, SpaceStage.CONFIG_ERROR, REASON_MISSING_README, msg)
    parsed = parse_readme(readme_text)
    if parsed.error is not None:
        return Evaluation(None, {}, SpaceStage.CONFIG_ERROR, REASON_YAML, parsed.error.message)
    result = check_card(parsed.data, default_title, parsed)
    if result.config is None:
        first = result.problems[0]
        message = "\n".join(p.message for p in result.problems)
        return Evaluation(None, parsed.data, SpaceStage.CONFIG_ERROR, first.reason, message, result.warnings)
    missing = _missing_app(result.config, files)
    if missing is not None:
        return Evaluation(result.config, parsed.data, SpaceStage.NO_APP_FILE, *missing, result.warnings)
    return Evaluation(result.config, parsed.data, None, REASON_OK, "", result.warnings)


def validate_yaml_for_api(content: str) -> tuple[list[str], list[str]]:
    """``(errors, warnings)`` for ``POST /api/validate-yaml`` given the full README text.

    Errors only for what makes the README unusable (broken YAML, unknown sdk, wrong types); a missing ``sdk`` is not
    an error here because the client validates every README it uploads, including work in progress.
    """
    if not isinstance(content, str):
        return ["`content` must be the README text as a string."], []
    parsed = parse_readme(content)
    if parsed.error is not None:
        return [parsed.error.message], []
    result = check_card(parsed.data, "", parsed)
    errors = [p.message for p in result.problems if p.reason != REASON_MISSING_SDK]
    return errors, result.warnings
