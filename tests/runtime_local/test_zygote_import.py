"""What the zygote's SDK import leaves behind for its forks, checked on a real environment.

* Native settings. A fork inherits whatever the zygote's native libraries configured from the environment at import
  (OpenSSL's config file, numpy's CPU dispatch, OpenBLAS's threads, pyarrow's memory pool, ...): a Space's own
  values for those can only apply in a fresh process, so a Space that sets them differently must cold-start.
  ``os.environ`` reads are recorded by the zygote itself; ``getenv`` calls from C are not, so
  ``zygote.NATIVE_PREFIXES`` lists them. The audit records every ``getenv`` / ``secure_getenv`` of a real SDK import
  (an ``LD_PRELOAD`` shim built here with gcc) and fails on a name the list does not cover, e.g. after an SDK
  upgrade pulls in a library that reads a new variable.
* Warm caches. What ``zygote.SDK_WARM`` fills must still exist in the SDK version we test.
* Memos. A fork's first call of a ``zygote.SDK_MEMO`` function takes the zygote's result only when the fork finds
  the same installed distributions; then the SDK's own function is back.
* Copies. A fork's first copy of a ``zygote.SDK_COPIES`` template is the zygote's only while the template has the
  keys it had then, gives the config a fresh copy would, and the copy module is back after it.
"""

from __future__ import annotations

import json
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


def test_the_zygote_reads_the_mime_tables_streamlit_registers_its_types_in(venv: Path) -> None:
    out = subprocess.run([str(venv / "bin" / "python"), "-c", import_script("streamlit", "import mimetypes; "
                                                                             "print(mimetypes.inited)")],
                         check=True, capture_output=True, text=True, timeout=300, cwd="/").stdout
    assert out.split()[-1] == "True"


MEMO_CHECK = """
import importlib.metadata as md, json, os, sys
from streamlit.components.v2 import manifest_scanner as m
original, real, calls = m.scan_component_manifests, md.distributions, []
md.distributions = lambda *a, **k: (calls.append(1), real(*a, **k))[1]
zygote._install_memos()
app = sys.argv[1]
sys.path[:0] = [app, app]  # as the fork's sys.path[0] and Streamlit's own entry for the script's directory
first = m.scan_component_manifests()
out = {"memo": len(zygote._MEMOS), "first_scans": len(calls), "same": first == zygote._MEMOS[0][2],
       "restored": m.scan_component_manifests is original}
os.makedirs(os.path.join(app, "demo_component-1.0.dist-info"))
with open(os.path.join(app, "demo_component-1.0.dist-info", "METADATA"), "w") as f:
    f.write("Metadata-Version: 2.1\\nName: demo-component\\nVersion: 1.0\\nRequires-Dist: streamlit\\n")
zygote._install_memos()
second = m.scan_component_manifests()
out.update(second_scans=len(calls), restored_again=m.scan_component_manifests is original)
print(json.dumps(out))
"""


def test_a_fork_takes_streamlits_component_scan_from_the_zygote_unless_its_app_installs_one(
        venv: Path, tmp_path: Path) -> None:
    app = tmp_path / "app"
    app.mkdir()
    out = subprocess.run([str(venv / "bin" / "python"), "-c", import_script("streamlit", MEMO_CHECK), str(app)],
                         check=True, capture_output=True, text=True, timeout=300, cwd="/").stdout
    got = json.loads(out.splitlines()[-1])
    # the zygote scanned once; a fork with the same distributions gets that result and does not scan
    assert got["memo"] == 1 and got["first_scans"] == 0 and got["same"] and got["restored"]
    # an app directory that holds a distribution's metadata changes what a scan finds: the fork scans itself
    assert got["second_scans"] == 1 and got["restored_again"]


COPY_CHECK = """
import copy, json, os
import streamlit.config as c
module, name, template, keys, made = zygote._COPIES[0]
values = lambda opts: {k: (o.value, o.where_defined) for k, o in opts.items()}
state = lambda opts: {k: dict(vars(o)) for k, o in opts.items()}  # values alone may be computed from the config
before = state(template)
flags = {"server.port": 8123, "server.headless": True}  # applied to the copy, as a Space's flags are at every start
zygote._install_copies()
first = c.get_config_options(force_reparse=True, options_from_flags=flags)
out = {"taken": first is made, "restored": c.copy is copy, "port": c.get_option("server.port"),
       "headless": c.get_option("server.headless")}
second = c.get_config_options(force_reparse=True, options_from_flags=flags)
out.update(anew=second is not first, same_config=values(first) == values(second),
           template_untouched=state(template) == before)
zygote._install_copies()  # a template that gained an option since the zygote copied it is copied anew
c._create_option("global.spacesProbe", description="probe", default_val=1, type_=int)
third = c.get_config_options(force_reparse=True)
out.update(changed_taken=third is made, changed_has_probe="global.spacesProbe" in third,
           changed_restored=c.copy is copy)
print(json.dumps(out))
"""


def test_a_fork_takes_streamlits_config_copy_from_the_zygote_while_the_template_is_unchanged(venv: Path) -> None:
    out = subprocess.run([str(venv / "bin" / "python"), "-c", import_script("streamlit", COPY_CHECK)],
                         check=True, capture_output=True, text=True, timeout=300, cwd="/").stdout
    got = json.loads(out.splitlines()[-1])
    # the first start-up parse gets the zygote's copy, with this start's flags applied to it
    assert got["taken"] and got["restored"] and got["port"] == 8123 and got["headless"] is True
    # later parses copy anew, and agree with the first: the copy the zygote made is the copy a fork would make
    assert got["anew"] and got["same_config"] and got["template_untouched"]
    # a template with other options than the zygote copied is copied anew
    assert not got["changed_taken"] and got["changed_has_probe"] and got["changed_restored"]
