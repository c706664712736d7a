"""A throw-away control plane for the re-adoption test: starts the given specs, reports, then waits to be killed.

Usage: python control_plane.py SETTINGS_JSON SPECS_JSON OUT_JSON. Each spec has a "zygote" flag.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from spaces.builder.plan import Artifact
from spaces.runtime.backends.local import LocalBackend, LocalBackendSettings
from spaces.runtime.contracts import InstanceSpec, Limits


def main() -> None:
    settings = LocalBackendSettings.model_validate_json(Path(sys.argv[1]).read_text())
    backend = LocalBackend(settings)
    handles = []
    for raw in json.loads(Path(sys.argv[2]).read_text()):
        use_zygote = raw.pop("zygote")
        raw["artifact"] = Artifact(**raw["artifact"])
        raw["limits"] = Limits(**raw["limits"])
        backend.settings.zygote = use_zygote
        handles.append(backend.start(InstanceSpec(**raw)).to_json())
    zygotes = [z.proc.pid for z in backend.zygotes._zygotes.values() if z.proc is not None]
    Path(sys.argv[3]).write_text(json.dumps({"handles": handles, "zygotes": zygotes}))
    while True:
        time.sleep(60)


if __name__ == "__main__":
    main()
