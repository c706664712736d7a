"""Pure helpers of the local builder: interpreter choice, uv failure lines, the SDK requirement."""

from __future__ import annotations

from pathlib import Path

import pytest

from spaces.builder.localenv import sdk_requirement
from spaces.builder.plan import BuildPlan
from spaces.builder.pythons import Interpreter, choose
from spaces.builder.uvrun import explain

HOST = [Interpreter((3, 11, 7), Path("/a/3.11")), Interpreter((3, 10, 13), Path("/a/3.10")),
        Interpreter((3, 11, 9), Path("/b/3.11")), Interpreter((3, 13, 0), Path("/a/3.13"))]


@pytest.mark.parametrize("wanted, picked, warns", [
    ("3.10", "3.10.13", False),
    ("3.11", "3.11.9", False),  # newest patch of the asked minor
    ("3.11.7", "3.11.7", False),  # exact patch when present
    ("3.11.2", "3.11.9", True),  # patch missing: same minor, with a warning
    ("3.9", "3.10.13", True),  # nearest minor
    ("3.12", "3.13.0", True),  # tie between 3.11 and 3.13: the newer
    ("3.4", "3.10.13", True),
])
def test_choose_interpreter(wanted: str, picked: str, warns: bool) -> None:
    interp, warning = choose(wanted, HOST)
    assert interp.text == picked
    assert (warning is not None) == warns
    if warning:
        assert warning.startswith("WARNING") and wanted in warning and picked in warning


UV_NO_SOLUTION = """Using Python 3.11.7 environment at: /tmp/env
  × No solution found when resolving dependencies:
  ╰─▶ Because nonexistent-pkg-spaces was not found in the package registry and you require
      nonexistent-pkg-spaces, we can conclude that your requirements are unsatisfiable.""".splitlines()

UV_BUILD_FAIL = """Resolved 3 packages in 10ms
  × Failed to build `broken==1.0`
  ├─▶ The build backend returned an error
  ╰─▶ Call to `setuptools.build_meta.build_wheel` failed (exit status: 1)""".splitlines()


UV_NO_SOLUTION_PLAIN = """Using Python 3.11.7 environment at: /tmp/env
error: No solution found when resolving dependencies
  cause: Because there is no version of numpy==0.0.1 and you require numpy==0.0.1, we can conclude that your \
requirements are unsatisfiable.""".splitlines()


def test_explain_picks_the_informative_line() -> None:
    assert explain(UV_NO_SOLUTION) == (
        "No solution found when resolving dependencies: Because nonexistent-pkg-spaces was not found in the package "
        "registry and you require nonexistent-pkg-spaces, we can conclude that your requirements are unsatisfiable.")
    assert explain(UV_NO_SOLUTION_PLAIN) == (
        "No solution found when resolving dependencies: Because there is no version of numpy==0.0.1 and you "
        "require numpy==0.0.1, we can conclude that your requirements are unsatisfiable.")
    assert explain(UV_BUILD_FAIL) == "Failed to build `broken==1.0`: The build backend returned an error"
    assert explain(["error: Failed to parse: `requirements.txt`", "  Caused by: bad"]) == (
        "Failed to parse: `requirements.txt`: bad")
    assert explain(["a", "", "last words", ""]) == "last words"


def plan(**kw: object) -> BuildPlan:
    return BuildPlan(**{"sdk": "gradio", "python_version": "", "sdk_version": None, "app_file": "app.py",
                        "app_port": 7860, **kw})


def test_sdk_requirement() -> None:
    assert sdk_requirement(plan(sdk_version="6.31.0", requirements="gradio==4.0\n")) == ("gradio==6.31.0", True)
    assert sdk_requirement(plan(requirements="numpy\nGradio[oauth]>=5\n")) == (None, False)
    assert sdk_requirement(plan(requirements="gradio\n")) == (None, False)
    req, override = sdk_requirement(plan(requirements="gradio-client\n"))  # another package: not a gradio pin
    assert req is not None and req.startswith("gradio") and not override
