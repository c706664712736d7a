"""README front matter -> SpaceConfig, stages for unusable configs, /api/validate-yaml (spaces.domain.cardconfig)."""

from __future__ import annotations

import json

import pytest

from spaces.domain.cardconfig import (
    REASON_INVALID,
    REASON_MISSING_SDK,
    REASON_UNKNOWN_SDK,
    SpaceConfigError,
    check_card,
    config_from_card,
    evaluate,
    parse_duration,
    parse_readme,
    validate_yaml_for_api,
)
from spaces.domain.stages import SpaceStage
from spaces.errors import BadRequest


def readme(*lines: str, body: str = "# Hello\n") -> str:
    return "---\n" + "".join(line + "\n" for line in lines) + "---\n" + body


# --- parse_readme -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "data"),
    [
        ("# Just a title\n", {}),
        ("", {}),
        (readme("sdk: gradio", "title: Demo"), {"sdk": "gradio", "title": "Demo"}),
        ("\n\n" + readme("sdk: docker"), {"sdk": "docker"}),
        ("\ufeff" + readme("sdk: static"), {"sdk": "static"}),
        ("---\r\nsdk: gradio\r\n---\r\nbody", {"sdk": "gradio"}),
        (readme(), {}),
        (readme("# only a comment"), {}),
        # dates stay strings so cardData is JSON-serialisable
        (readme("created: 2024-01-01"), {"created": "2024-01-01"}),
        (readme("tags:", "- a", "- b"), {"tags": ["a", "b"]}),
    ],
)
def test_parse_readme_ok(text: str, data: dict) -> None:
    parsed = parse_readme(text)
    assert parsed.error is None
    assert parsed.data == data
    json.dumps(parsed.data)


@pytest.mark.parametrize(
    ("text", "line", "fragment"),
    [
        (readme("sdk: gradio", "title: [unclosed"), 3, "invalid"),
        (readme("sdk: gradio", "title: a", "  bad: indent"), 4, "invalid"),
        (readme("sdk: gradio", "\tapp_file: x.py"), 3, "invalid"),
        ("\n" + readme("sdk: gradio", "emoji: : :"), 4, "invalid"),
        (readme("- a", "- b"), 1, "must be a mapping"),
        (readme("just a string"), 1, "must be a mapping"),
        ("---\nsdk: gradio\n# never closed\n", 1, "not closed"),
    ],
)
def test_parse_readme_errors_name_the_line(text: str, line: int, fragment: str) -> None:
    parsed = parse_readme(text)
    assert parsed.error is not None
    assert parsed.data == {}
    assert parsed.error.line == line
    assert f"README.md line {line}:" in parsed.error.message
    assert fragment in parsed.error.message


def test_line_of_and_raw_value() -> None:
    parsed = parse_readme(readme("title: x", "python_version: 3.10  # quoted?", "sdk: gradio"))
    assert parsed.line_of("sdk") == 4
    assert parsed.line_of("python_version") == 3
    assert parsed.line_of("missing") is None
    assert parsed.raw_value("python_version") == "3.10"


# --- check_card / config_from_card -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("card", "expected"),
    [
        ({"sdk": "gradio"}, {"app_file": "app.py", "app_port": 7860, "python_version": "3.10", "title": "demo"}),
        ({"sdk": "streamlit"}, {"app_file": "app.py", "app_port": 8501}),
        ({"sdk": "docker"}, {"app_file": None, "app_port": 7860}),
        ({"sdk": "docker", "app_port": 8080}, {"app_port": 8080}),
        ({"sdk": "static"}, {"app_file": "index.html", "app_port": None}),
        ({"sdk": "gradio", "app_file": "src/main.py", "title": "My App"}, {"app_file": "src/main.py", "title": "My App"}),
        ({"sdk": "gradio", "python_version": "3.11.9", "sdk_version": "4.44.1"},
         {"python_version": "3.11.9", "sdk_version": "4.44.1"}),
        ({"sdk": "gradio", "startup_duration_timeout": "1h"}, {"startup_duration_timeout": 3600}),
        ({"sdk": "gradio"}, {"startup_duration_timeout": 1800, "fullWidth": True, "pinned": False}),
        ({"sdk": "gradio", "tags": ["a", 1], "models": ["gpt2"], "datasets": []},
         {"tags": ("a", "1"), "models": ("gpt2",), "datasets": ()}),
        ({"sdk": "gradio", "suggested_hardware": "t4-small", "pinned": True, "license": "mit"},
         {"suggested_hardware": "t4-small", "pinned": True, "license": "mit"}),
        ({"sdk": "gradio", "colorFrom": "red", "colorTo": "gray", "emoji": "🔥"},
         {"colorFrom": "red", "colorTo": "gray", "emoji": "🔥"}),
        ({"sdk": "gradio", "tags": None, "title": None}, {"tags": (), "title": "demo"}),
        ({"sdk": "static", "app_build_command": "npm run build", "app_file": "dist/index.html"},
         {"app_build_command": "npm run build", "app_file": "dist/index.html"}),
        ({"sdk": "gradio", "custom_headers": {"Cross-Origin-Opener-Policy": "same-origin"}},
         {"custom_headers": {"cross-origin-opener-policy": "same-origin"}}),
    ],
)
def test_config_from_card(card: dict, expected: dict) -> None:
    config = config_from_card(card, "demo")
    for key, value in expected.items():
        assert getattr(config, key) == value, key


def test_preload_from_hub_entries() -> None:
    config = config_from_card(
        {"sdk": "gradio", "preload_from_hub": ["gpt2", "org/model a.bin,b.json", "org/m c.txt abc123"]}, "d"
    )
    assert [(p.repo_id, p.files, p.revision) for p in config.preload_from_hub] == [
        ("gpt2", (), None), ("org/model", ("a.bin", "b.json"), None), ("org/m", ("c.txt",), "abc123"),
    ]


def test_preload_from_hub_datasets_and_round_trip() -> None:
    from spaces.domain.cardconfig import parse_preload

    found = parse_preload("datasets/org/data train.csv main")
    assert (found.repo_type, found.repo_id, found.files, found.revision) == ("dataset", "org/data", ("train.csv",),
                                                                             "main")
    for entry in ("gpt2", "org/m a,b", "datasets/org/d * v1", "org/m c.txt abc123"):
        assert parse_preload(parse_preload(entry).text) == parse_preload(entry)
    assert parse_preload("models/org/m").repo_type == "model"
    for bad in ("spaces/org/x", "a/b/c", "/x", "x/", "a b c d"):
        assert parse_preload(bad) is None, bad


def test_missing_sdk_message() -> None:
    with pytest.raises(SpaceConfigError) as info:
        config_from_card({"title": "x"}, "demo")
    assert info.value.problems[0].reason == REASON_MISSING_SDK
    assert info.value.message == (
        "README.md front matter has no `sdk:` key; add `sdk: gradio` (or streamlit, docker, static)"
    )
    assert isinstance(info.value, BadRequest)


@pytest.mark.parametrize(
    ("lines", "key", "line", "fragment", "reason"),
    [
        (["sdk: flask"], "sdk", 2, "`sdk: flask` is not a supported SDK; use one of gradio, streamlit, docker, static",
         REASON_UNKNOWN_SDK),
        (["title: x", "sdk: Gradio"], "sdk", 3, "not a supported SDK", REASON_UNKNOWN_SDK),
        (["sdk: docker", "app_port: abc"], "app_port", 3, "`app_port` must be an integer between 1 and 65535",
         REASON_INVALID),
        (["sdk: docker", "app_port: 70000"], "app_port", 3, "got 70000", REASON_INVALID),
        (["sdk: docker", "app_port: '8080'"], "app_port", 3, "got '8080'", REASON_INVALID),
        (["sdk: docker", "app_port: true"], "app_port", 3, "integer", REASON_INVALID),
        (["sdk: gradio", "tags: one"], "tags", 3, "`tags` must be a list", REASON_INVALID),
        (["sdk: gradio", "models: {a: b}"], "models", 3, "`models` must be a list", REASON_INVALID),
        (["sdk: gradio", "python_version: '2.7'"], "python_version", 3, "3.x or 3.x.y", REASON_INVALID),
        (["sdk: gradio", "python_version: py3"], "python_version", 3, "got 'py3'", REASON_INVALID),
        (["sdk: gradio", "suggested_hardware: h100"], "suggested_hardware", 3, "not a known flavor; use one of cpu-basic",
         REASON_INVALID),
        (["sdk: gradio", "startup_duration_timeout: forever"], "startup_duration_timeout", 3, "like 30m, 1h",
         REASON_INVALID),
        (["sdk: gradio", "startup_duration_timeout: 30"], "startup_duration_timeout", 3, "got 30", REASON_INVALID),
        (["sdk: gradio", "startup_duration_timeout: 0m"], "startup_duration_timeout", 3, "got '0m'", REASON_INVALID),
        (["sdk: gradio", "app_file: ../secret.py"], "app_file", 3, "`app_file` is not a valid path", REASON_INVALID),
        (["sdk: gradio", "app_file: /abs/app.py"], "app_file", 3, "leading '/'", REASON_INVALID),
        (["sdk: gradio", "app_file: [a]"], "app_file", 3, "`app_file` must be a string", REASON_INVALID),
        (["sdk: gradio", "pinned: maybe"], "pinned", 3, "`pinned` must be true or false", REASON_INVALID),
        (["sdk: gradio", "sdk_version: 4.0; rm -rf /"], "sdk_version", 3, "version like", REASON_INVALID),
        (["sdk: gradio", "base_path: app"], "base_path", 3, "must start with '/'", REASON_INVALID),
        (["sdk: gradio", "custom_headers: [x]"], "custom_headers", 3, "must be a mapping", REASON_INVALID),
        (["sdk: gradio", "preload_from_hub: ['a b c d']"], "preload_from_hub", 3, "'repo f1,f2 <commit>'",
         REASON_INVALID),
        (["sdk: gradio", "hf_oauth_expiration_minutes: 99999"], "hf_oauth_expiration_minutes", 3, "43200",
         REASON_INVALID),
    ],
)
def test_config_errors_name_key_and_line(lines, key, line, fragment, reason) -> None:
    parsed = parse_readme(readme(*lines))
    assert parsed.error is None
    result = check_card(parsed.data, "demo", parsed)
    assert result.config is None
    problem = next(p for p in result.problems if p.key == key)
    assert problem.line == line and problem.reason == reason
    assert problem.message.startswith(f"README.md line {line}: ")
    assert f"`{key}" in problem.message
    assert fragment in problem.message


@pytest.mark.parametrize(
    ("lines", "fragment", "check"),
    [
        (["sdk: gradio", "colorFrom: orange"], "line 3: `colorFrom: orange` is not a known color",
         lambda c: c.colorFrom is None),
        (["sdk: gradio", "colorTo: 5"], "`colorTo: 5` is not a known color", lambda c: c.colorTo is None),
        (["sdk: gradio", "emoji: [1]"], "`emoji` must be a string", lambda c: c.emoji is None),
        (["sdk: gradio", "app_port: 8080"], "only used by docker Spaces; gradio apps listen on 7860",
         lambda c: c.app_port == 7860),
        (["sdk: docker", "app_file: app.py"], "ignored for docker", lambda c: c.app_file is None),
        (["sdk: streamlit"], "deprecated", lambda c: c.sdk == "streamlit"),
        (["sdk: gradio", "python_version: 3.10"], "quote it", lambda c: c.python_version == "3.10"),
        (["sdk: gradio", "sdk_version: 4.40"], "quote it", lambda c: c.sdk_version == "4.40"),
        (["sdk: gradio", "header: huge"], "`header: huge`", lambda c: c.header == "default"),
        (["sdk: gradio", "suggested_storage: small"], "no longer exist", lambda c: True),
        (["sdk: docker", "suggested_hardware: zero-a10g"], "gradio Spaces only", lambda c: True),
        (["sdk: gradio", "app_build_command: make"], "only used by static", lambda c: True),
        (["sdk: gradio", "app_file: app.ipynb"], "not a .py file", lambda c: c.app_file == "app.ipynb"),
        (["sdk: gradio", "custom_headers: {x-frame-options: deny}"], "is ignored", lambda c: c.custom_headers == {}),
    ],
)
def test_warnings_do_not_block(lines, fragment, check) -> None:
    parsed = parse_readme(readme(*lines))
    result = check_card(parsed.data, "demo", parsed)
    assert result.problems == []
    assert result.config is not None and check(result.config)
    assert any(fragment in w for w in result.warnings), result.warnings


def test_all_problems_are_reported_together() -> None:
    with pytest.raises(SpaceConfigError) as info:
        config_from_card({"sdk": "docker", "app_port": 0, "tags": "x", "python_version": "4"}, "d")
    assert {p.key for p in info.value.problems} == {"app_port", "tags", "python_version"}
    assert "`app_port`" in info.value.message and "`tags`" in info.value.message


@pytest.mark.parametrize(
    ("text", "seconds"), [("30m", 1800), ("1h", 3600), ("90s", 90), ("1h30m", 5400), ("2h5m10s", 7510), ("1d", 86400)]
)
def test_parse_duration(text: str, seconds: int) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "h", "30", "1.5h", "30m1h", "-1h", "1 hour"])
def test_parse_duration_rejects(text: str) -> None:
    with pytest.raises(ValueError):
        parse_duration(text)


# --- evaluate ---------------------------------------------------------------------------------------------------

GRADIO = readme("title: Demo", "sdk: gradio")


@pytest.mark.parametrize(
    ("text", "files", "stage", "reason", "fragment"),
    [
        (None, {".gitattributes"}, SpaceStage.CONFIG_ERROR, "missing_readme", "no README.md"),
        ("# no front matter\n", {"README.md", "app.py"}, SpaceStage.CONFIG_ERROR, "missing_readme_sdk", "`sdk:`"),
        (readme("title: x"), {"README.md", "app.py"}, SpaceStage.CONFIG_ERROR, "missing_readme_sdk", "`sdk: gradio`"),
        (readme("sdk: gradio", "title: [x"), {"README.md", "app.py"}, SpaceStage.CONFIG_ERROR, "yaml_error",
         "README.md line 3"),
        (readme("sdk: rails"), {"README.md"}, SpaceStage.CONFIG_ERROR, "unknown_sdk", "`sdk: rails`"),
        (readme("sdk: docker", "app_port: x"), {"Dockerfile"}, SpaceStage.CONFIG_ERROR, "invalid_config",
         "README.md line 3: `app_port`"),
        (GRADIO, {"README.md", ".gitattributes"}, SpaceStage.NO_APP_FILE, "missing_app_file",
         "gradio Spaces run `app.py`, which is not in the repository"),
        (GRADIO, {"README.md", "main.py"}, SpaceStage.NO_APP_FILE, "missing_app_file", "could be it: main.py"),
        (readme("sdk: gradio", "app_file: src/ui.py"), {"README.md", "app.py"}, SpaceStage.NO_APP_FILE,
         "missing_app_file", "`src/ui.py`"),
        (readme("sdk: streamlit"), {"README.md"}, SpaceStage.NO_APP_FILE, "missing_app_file", "streamlit Spaces run"),
        (readme("sdk: static"), {"README.md"}, SpaceStage.NO_APP_FILE, "missing_app_file",
         "static Spaces serve `index.html`"),
        (readme("sdk: docker"), {"README.md", "app.py"}, SpaceStage.NO_APP_FILE, "missing_dockerfile",
         "docker Spaces need a Dockerfile at the repository root"),
        (readme("sdk: docker"), {"README.md", "docker/Dockerfile"}, SpaceStage.NO_APP_FILE, "missing_dockerfile",
         "Found `docker/Dockerfile`"),
        (GRADIO, {"README.md", "app.py"}, None, "ok", ""),
        (readme("sdk: gradio", "app_file: src/ui.py"), {"README.md", "src/ui.py"}, None, "ok", ""),
        (readme("sdk: docker"), {"README.md", "Dockerfile"}, None, "ok", ""),
        (readme("sdk: static"), {"README.md", "index.html"}, None, "ok", ""),
        # built static apps: app_file is in the build output, not in the repo
        (readme("sdk: static", "app_build_command: npm run build", "app_file: dist/index.html"),
         {"README.md", "package.json"}, None, "ok", ""),
    ],
)
def test_evaluate(text, files, stage, reason, fragment) -> None:
    result = evaluate(text, files, "demo")
    assert result.stage == stage
    assert result.reason == reason
    assert fragment in result.message
    if stage is None:
        assert result.config is not None and result.message == ""


def test_evaluate_keeps_card_and_warnings() -> None:
    text = readme("sdk: gradio", "colorFrom: orange", "custom: 1")
    result = evaluate(text, {"app.py"}, "demo")
    assert result.card == {"sdk": "gradio", "colorFrom": "orange", "custom": 1}
    assert result.config is not None and result.config.title == "demo"
    assert result.warnings and "colorFrom" in result.warnings[0]


# --- /api/validate-yaml ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("content", "n_errors", "fragment"),
    [
        ("# no front matter\n", 0, None),
        (readme("title: no sdk yet"), 0, None),  # a missing sdk is not an error for validate-yaml
        (GRADIO, 0, None),
        (readme("sdk: gradio", "title: [x"), 1, "README.md line 3"),
        (readme("sdk: flask"), 1, "`sdk: flask`"),
        (readme("sdk: docker", "app_port: x", "tags: y"), 2, "`app_port`"),
        (readme("title: x", "app_port: nope"), 1, "`app_port`"),
        (123, 1, "string"),
    ],
)
def test_validate_yaml_for_api(content, n_errors: int, fragment: str | None) -> None:
    errors, warnings = validate_yaml_for_api(content)
    assert len(errors) == n_errors, errors
    if fragment:
        assert fragment in errors[0]
    assert isinstance(warnings, list)


def test_validate_yaml_returns_warnings() -> None:
    errors, warnings = validate_yaml_for_api(readme("sdk: gradio", "colorTo: brown"))
    assert errors == [] and warnings == ["README.md line 3: `colorTo: brown` is not a known color; use one of red, "
                                         "yellow, green, blue, indigo, purple, pink, gray."]
