"""What the zygote's SDK import leaves behind for its forks, checked on a real environment.

* Native settings. A fork inherits whatever the zygote's native libraries configured from the environment at import
  (OpenSSL's config file, numpy's CPU dispatch, OpenBLAS's threads, pyarrow's memory pool, ...): a Space's own
  values for those can only apply in a fresh process, so a Space that sets them differently must cold-start.
  ``os.environ`` reads are recorded by the zygote itself; ``getenv`` calls from C are not, so
  ``zygote.NATIVE_PREFIXES`` lists them. The audit records every ``getenv`` / ``secure_getenv`` of a real SDK import
  (an ``LD_PRELOAD`` shim built here with gcc) and fails on a name the list does not cover, e.g. after an SDK
  upgrade pulls in a library that reads a new variable.
* Warm caches. What ``zygote.SDK_WARM`` fills must still exist in the SDK version we test.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from spaces.runtime import zygote
from spaces.runtime.backends.local import LocalBackend
from spaces.runtime.contracts import Phase

from runtime_local.helpers import HELLO_GRADIO, Spaces, get, wait_phase

SHIM = r"""
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char *(*real_getenv)(const char *);
static char *(*real_secure_getenv)(const char *);
static int log_fd = -1;

static void note(const char *name) {
    if (log_fd < 0) {
        const char *fd = real_getenv("GETENV_LOG_FD");
        if (!fd) return;
        log_fd = atoi(fd);
    }
    if (name) {
        (void)!write(log_fd, name, strlen(name));
        (void)!write(log_fd, "\n", 1);
    }
}

char *getenv(const char *name) {
    if (!real_getenv) real_getenv = dlsym(RTLD_NEXT, "getenv");
    note(name);
    return real_getenv(name);
}

char *secure_getenv(const char *name) {
    if (!real_getenv) real_getenv = dlsym(RTLD_NEXT, "getenv");
    if (!real_secure_getenv) real_secure_getenv = dlsym(RTLD_NEXT, "secure_getenv");
    note(name);
    return real_secure_getenv(name);
}
"""


@pytest.fixture(scope="module")
def shim(tmp_path_factory: pytest.TempPathFactory) -> Path:
    gcc = shutil.which("gcc")
    if gcc is None:
        pytest.skip("needs gcc to build the getenv recorder")
    work = tmp_path_factory.mktemp("getenv-shim")
    (work / "shim.c").write_text(SHIM)
    subprocess.run([gcc, "-shared", "-fPIC", "-O2", "-o", str(work / "shim.so"), str(work / "shim.c"), "-ldl"],
                   check=True)
    return work / "shim.so"


def import_script(sdk: str, then: str = "") -> str:
    """Python that imports ``sdk`` exactly as the zygote does (``zygote.py`` is stdlib-only: loaded by path)."""
    return (f"import sys; sys.path.insert(0, {str(Path(zygote.__file__).parent)!r}); import zygote; "
            f"zygote.import_sdk({sdk!r}); {then}")


def native_reads(venv: Path, shim: Path, sdk: str, tmp_path: Path) -> set[str]:
    """Every variable name native code asked for while a zygote's interpreter started and imported ``sdk``."""
    log = tmp_path / f"{sdk}.getenv"
    with open(log, "w") as out:
        subprocess.run([str(venv / "bin" / "python"), "-c", import_script(sdk)], check=True, timeout=300, cwd="/",
                       env={"PATH": os.environ["PATH"], "HOME": "/root", "LD_PRELOAD": str(shim),
                            "GETENV_LOG_FD": str(out.fileno())}, pass_fds=(out.fileno(),))
    return set(log.read_text().split())


@pytest.mark.parametrize("sdk", ["gradio", "streamlit"])
def test_every_variable_read_natively_at_sdk_import_is_covered(venv: Path, shim: Path, sdk: str,
                                                               tmp_path: Path) -> None:
    reads = native_reads(venv, shim, sdk, tmp_path)
    assert {"PYTHONHASHSEED", "OPENSSL_CONF"} <= reads  # the recorder works: CPython's start-up, OpenSSL's init
    uncovered = sorted(name for name in reads - {"GETENV_LOG_FD"} if not name.startswith(zygote.NATIVE_PREFIXES))
    assert not uncovered, (f"read by native code while the zygote imports {sdk}, so a fork would keep the zygote's "
                           f"value: add them to zygote.NATIVE_PREFIXES: {uncovered}")


@pytest.mark.parametrize("name,value", [("OPENSSL_CONF", "/etc/ssl/openssl.cnf"), ("GOTO_NUM_THREADS", "1")])
def test_a_space_setting_a_native_variable_is_cold_started(spaces: Spaces, backend: LocalBackend, name: str,
                                                          value: str) -> None:
    handle = spaces.start(spaces.spec({"app.py": HELLO_GRADIO}, env={name: value}))
    assert handle.data["via"] == "exec"
    wait_phase(backend, handle, Phase.RUNNING)
    assert get(handle).status_code == 200


def test_the_zygote_compiles_gradios_page_template(venv: Path) -> None:
    check = ("import gradio.routes as r; "
             "print(sorted(key[1] for key in r.templates.env.cache.keys()) if r.templates.env.cache else [])")
    out = subprocess.run([str(venv / "bin" / "python"), "-c", import_script("gradio", check)], check=True,
                         capture_output=True, text=True, timeout=300, cwd="/").stdout
    assert "frontend/index.html" in out
