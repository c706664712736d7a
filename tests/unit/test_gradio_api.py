"""A Gradio app's endpoints for the "Use via API" snippets: parsing ``/gradio_api/info`` (a hostile app's answer
included) into code that only ever calls the endpoint, and the hub's per-revision store of what the app said
(read from a real HTTP server standing in for the app; the live Gradio app is tests/platform/test_platform_api.py)."""

from __future__ import annotations

import ast
import asyncio
import json
import shlex
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from spaces.domain import gradio_api as g
from spaces.hub.app_api import MAX_INFO_BYTES, AppApi
from spaces.proxy.routes import MemoryRouteTable, Route

#: what the gradio template's app (``/greet``) answers, gradio 6.31
GREET = {"named_endpoints": {"/greet": {
    "parameters": [{"label": "Name", "parameter_name": "name", "parameter_has_default": False,
                    "parameter_default": None, "type": {"type": "string"},
                    "python_type": {"type": "str", "description": ""}, "component": "Textbox",
                    "example_input": "Hello!!"}],
    "returns": [{"label": "Greeting", "type": {"type": "string"}, "python_type": {"type": "str", "description": ""},
                 "component": "Textbox"}],
    "api_visibility": "public", "description": "",
    "code_snippets": {"python": "import os; os.system('rm -rf ~')"}}}, "unnamed_endpoints": {}}


def endpoint(params: list[dict], name: str = "/run", **spec: object) -> dict:
    return {"named_endpoints": {name: {"parameters": params, "returns": [], **spec}}}


def param(name: object = "x", example: object = "v", kind: str = "str") -> dict:
    return {"label": "L", "parameter_name": name, "python_type": {"type": kind}, "example_input": example}


def test_the_templates_endpoint_as_gradios_own_snippet_writes_it() -> None:
    (ep,) = g.endpoints(GREET)
    assert ep.api_name == "/greet" and ep.returns == ("Greeting (str)",)
    assert g.python_args(ep) == 'name="Hello!!", api_name="/greet"'
    assert g.js_args(ep) == '{ name: "Hello!!" }'
    assert shlex.split(g.curl_data(ep)) == ['{"data": ["Hello!!"]}']


@pytest.mark.parametrize("spec,shown", [
    ({"api_visibility": "public"}, True), ({"api_visibility": "undocumented"}, False),
    ({"api_visibility": "private"}, False), ({"show_api": False}, False), ({}, True),
])
def test_only_public_endpoints_are_listed(spec: dict, shown: bool) -> None:
    assert bool(g.endpoints(endpoint([param()], **spec))) is shown


@pytest.mark.parametrize("name", ["/x; rm -rf ~", "greet", "/../admin", "/" + "a" * 65, 7])
def test_endpoint_names_unlike_gradios_are_left_out(name: object) -> None:
    info = {"named_endpoints": {name: {"parameters": []}, "/ok": {"parameters": []}}}
    assert [e.api_name for e in g.endpoints(info)] == ["/ok"]


@pytest.mark.parametrize("info", [None, [], {"named_endpoints": []}, {"named_endpoints": {"/a": "x"}}, "text"])
def test_a_malformed_answer_gives_no_endpoints(info: object) -> None:
    assert g.endpoints(info) == ()


HOSTILE = ['"); import os; os.system("id"); ("', "'''", "\\", "x\u2028y", "😀 \" '", "$(id) `id` '; id; '"]


@pytest.mark.parametrize("value", HOSTILE)
def test_hostile_examples_stay_literals_in_every_language(value: str) -> None:
    (ep,) = g.endpoints(endpoint([param("a", value), param("b", {"k": [value, 1.5, None, True]}, "dict")]))
    call = ast.parse(f"client.predict({g.python_args(ep)})", mode="eval").body
    assert isinstance(call, ast.Call) and [k.arg for k in call.keywords] == ["a", "b", "api_name"]
    assert [ast.literal_eval(k.value) for k in call.keywords] == [value, {"k": [value, 1.5, None, True]}, "/run"]
    assert json.loads(shlex.split(g.curl_data(ep))[0]) == {"data": [value, {"k": [value, 1.5, None, True]}]}
    js = g.js_args(ep)
    assert "\u2028" not in js and js == '{ a: %s, b: %s }' % (json.dumps(value), json.dumps(ep.params[1].example))


@pytest.mark.parametrize("name", ["os.system('id') or x", "class", "api_name", "a b", "", None, "x" * 65])
def test_a_parameter_name_that_is_not_a_plain_identifier_makes_the_call_positional(name: object) -> None:
    (ep,) = g.endpoints(endpoint([param(name, "v"), param("y", 2, "int")]))
    assert not ep.by_keyword
    assert g.python_args(ep) == '"v", 2, api_name="/run"'
    assert g.js_args(ep) == '["v", 2]'


def test_files_are_handed_over_and_odd_or_oversized_examples_become_plain_values() -> None:
    url = "https://example.com/bus.png"
    (ep,) = g.endpoints(endpoint([
        param("img", {"path": url, "meta": {"_type": "gradio.FileData"}}, "filepath"),
        param("n", float("nan"), "float"), param("s", "x" * 1000, "str"), param("d", [[[[[[[[1]]]]]]]], "list"),
    ]))
    assert ep.has_files
    assert g.python_args(ep) == f'img=handle_file("{url}"), n=0.0, s="", d=None, api_name="/run"'
    assert g.js_args(ep).startswith(f'{{ img: handle_file("{url}"), ')
    assert json.loads(shlex.split(g.curl_data(ep))[0])["data"][0] == {"path": url,
                                                                      "meta": {"_type": "gradio.FileData"}}


def test_a_page_lists_a_bounded_number_of_endpoints_and_parameters() -> None:
    info = {"named_endpoints": {f"/e{i}": {"parameters": [param(f"p{j}") for j in range(100)]} for i in range(100)}}
    eps = g.endpoints(info)
    assert len(eps) == g.MAX_ENDPOINTS and all(len(e.params) == g.MAX_PARAMS for e in eps)


# ---- the hub's store of what the app said --------------------------------------------------------------------

class App:
    """A real HTTP server standing in for the app: answers ``/gradio_api/info`` with ``body`` and counts calls."""

    def __init__(self, body: bytes, status: int = 200) -> None:
        self.body, self.status, self.calls = body, status, 0
        app = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802
                app.calls += 1
                self.send_response(app.status if self.path == "/gradio_api/info" else 404)
                self.send_header("Content-Length", str(len(app.body)))
                self.end_headers()
                self.wfile.write(app.body)

            def log_message(self, *_: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def upstream(self) -> tuple[str, int]:
        return self.server.server_address[:2]


@pytest.fixture
def app() -> App:
    a = App(json.dumps(GREET).encode())
    yield a
    a.server.shutdown()


def store(tmp_path: Path, app: App, state: str = "running") -> AppApi:
    routes = MemoryRouteTable()
    routes.put("alice-demo", Route("sp1", app.upstream, state))
    return AppApi(tmp_path / "api", routes)


def view(api: AppApi, revision: str = "rev1", **kw: object):  # noqa: ANN201
    return asyncio.run(api.view("sp1", "alice-demo", revision, **kw))


def test_read_once_per_revision_then_from_the_kept_file(tmp_path: Path, app: App) -> None:
    api = store(tmp_path, app)
    first = view(api)
    assert first.read and first.current and [e.api_name for e in first.endpoints] == ["/greet"]
    assert view(api).endpoints == first.endpoints and app.calls == 1  # page views read the file
    again = AppApi(tmp_path / "api", None)  # another hub process, no route table: the file answers
    assert view(again).endpoints == first.endpoints and app.calls == 1
    view(api, "rev2")  # a newer revision runs: asked again
    assert app.calls == 2


def test_a_sleeping_space_is_not_asked_and_shows_what_was_kept(tmp_path: Path, app: App) -> None:
    api = store(tmp_path, app, "sleeping")
    generic = view(api, asleep=True)
    assert not generic.read and app.calls == 0 and "asleep" in generic.note and "/predict" in generic.note
    api.routes.put("alice-demo", Route("sp1", app.upstream, "running"))
    view(api)
    api.routes.put("alice-demo", Route("sp1", app.upstream, "sleeping"))
    kept = view(api, "rev2", asleep=True)  # pushed while asleep: the last revision that answered
    assert kept.read and not kept.current and kept.note.startswith("Read from revision rev1")
    assert app.calls == 1


def test_another_spaces_route_is_never_asked(tmp_path: Path, app: App) -> None:
    api = store(tmp_path, app)
    api.routes.put("alice-demo", Route("someone-else", app.upstream, "running"))
    assert not view(api).read and app.calls == 0


@pytest.mark.parametrize("body,status", [(b"not json", 200), (b"NaN", 200), (b"{}", 500),
                                         (b" " * (MAX_INFO_BYTES + 1), 200)])
def test_a_failed_read_shows_the_generic_snippet_and_waits_before_asking_again(
        tmp_path: Path, app: App, body: bytes, status: int) -> None:
    app.body, app.status = body, status
    api = store(tmp_path, app)
    first = view(api)
    assert not first.read and "did not say" in first.note
    view(api)
    assert app.calls == 1
    api.retry_after = 0
    app.body, app.status = json.dumps(GREET).encode(), 200
    assert view(api).read and app.calls == 2


def test_a_page_view_storm_is_one_read(tmp_path: Path, app: App) -> None:
    api = store(tmp_path, app)

    async def storm() -> list:
        return await asyncio.gather(*(api.view("sp1", "alice-demo", "rev1") for _ in range(20)))

    assert all(v.read for v in asyncio.run(storm())) and app.calls == 1


def test_a_deleted_spaces_file_goes(tmp_path: Path, app: App) -> None:
    api = store(tmp_path, app)
    view(api)
    api.forget("sp1")
    assert list((tmp_path / "api").iterdir()) == []
