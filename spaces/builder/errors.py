"""Errors a build can end in. Both are :class:`~spaces.errors.SpacesError`, so the build service records their
``message`` as the stage message and no traceback reaches the author.

* :class:`BuildConfigError`: the commit cannot be planned (broken README, no pack matches, missing app file, a bad
  ``packages.txt`` line). ``stage`` says which stage the Space should show (``CONFIG_ERROR`` or ``NO_APP_FILE``),
  ``reason`` the reason code to record with it.
* :class:`BuildFailed`: the plan was fine but materialising it failed (``uv pip install`` could not resolve, a
  Debian package is missing on the host). The message carries the most informative line of the build log.
"""

from __future__ import annotations

from spaces.domain.stages import SpaceStage
from spaces.errors import SpacesError


class BuildConfigError(SpacesError):
    """The repository at this commit cannot be built as it is; the message says what to change."""

    status = 422
    code = "BuildConfigError"

    def __init__(self, message: str, *, reason: str = "invalid_config",
                 stage: SpaceStage = SpaceStage.CONFIG_ERROR) -> None:
        super().__init__(message)
        self.reason = reason
        self.stage = stage


class BuildFailed(SpacesError):
    """Building the environment failed. ``log_line`` is the line of the build log that says why (may be empty)."""

    status = 422
    code = "BuildFailed"

    def __init__(self, message: str, *, reason: str = "build_failed", log_line: str = "") -> None:
        super().__init__(message)
        self.reason = reason
        self.log_line = log_line
        self.stage = SpaceStage.BUILD_ERROR
