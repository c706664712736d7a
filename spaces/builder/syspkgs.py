"""packages.txt on the local backend: the Debian packages a Space asks for must already be on the host.

The local backend runs apps as processes on this machine, so it cannot apt-get install per Space; it checks with
``dpkg-query`` and reports what is missing (the build fails unless the operator chose ``warn``).
"""

from __future__ import annotations

import shutil
import subprocess


def missing_packages(names: tuple[str, ...]) -> list[str] | None:
    """The names not installed on this host, or None when the host has no dpkg (the check cannot be made).

    ``name=version`` is checked by name only; ``name:arch`` is checked as given.
    """
    if not names:
        return []
    dpkg = shutil.which("dpkg-query")
    if dpkg is None:
        return None
    wanted = {n: n.split("=", 1)[0] for n in names}
    proc = subprocess.run([dpkg, "-W", "-f", "${binary:Package}\t${Package}\t${db:Status-Abbrev}\n",
                           *wanted.values()], capture_output=True, text=True, timeout=60)
    installed: set[str] = set()
    for line in proc.stdout.splitlines():
        parts = line.split("\t")
        if len(parts) == 3 and parts[2].startswith("ii"):
            installed.update(parts[:2])  # "libc6:amd64" and "libc6"
    return [n for n, base in wanted.items() if base not in installed]
