"""The streamed answer of ``git http-backend`` must not read the request channel while the body is being fed.

Regression for fetches and pushes stalling after the response head: Starlette's StreamingResponse watches for a
disconnect by calling ``receive()`` while it streams; a body piece that watch takes never reaches git, which then
waits forever for the end of its input. Two ways it happened: the watch took a later piece while the feeder was
busy with a full stdin pipe (big pushes), and, for every small request (clone, fetch, pull), the watch took the
whole body when http-backend's CGI head was already buffered: then ``_cgi`` returns without ever yielding and the
watch calls ``receive()`` before the feeder task has run at all."""

from __future__ import annotations

import asyncio
from pathlib import Path

from starlette.requests import Request

from spaces.hub import git_http
from spaces.hub.git_http import _CgiResponse


def test_disconnect_watch_waits_until_the_body_has_been_read():
    async def scenario() -> tuple[list[bytes], list[bytes]]:
        channel: asyncio.Queue[dict] = asyncio.Queue()
        fed: list[bytes] = []
        sent: list[bytes] = []

        async def receive() -> dict:
            return await channel.get()

        async def send(message: dict) -> None:
            sent.append(message.get("body", b""))

        async def feeder() -> None:  # stands in for the task that copies the body to http-backend's stdin
            while True:
                message = await receive()
                fed.append(message["body"])
                if not message["more_body"]:
                    return
                await asyncio.sleep(0.05)  # stdin pipe full: the feeder is busy, not waiting on receive()

        answer_ready = asyncio.Event()

        async def body():
            yield b"head-of-answer"
            await answer_ready.wait()
            yield b"rest-of-answer"

        feeding = asyncio.create_task(feeder())
        await channel.put({"type": "http.request", "body": b"one", "more_body": True})
        response = _CgiResponse(body(), feeding, status_code=200)
        serving = asyncio.create_task(response({"type": "http", "asgi": {"spec_version": "2.3"}}, receive, send))
        await asyncio.sleep(0.01)  # the response is streaming; the feeder sleeps, only the watch could read now
        await channel.put({"type": "http.request", "body": b"two", "more_body": True})
        await asyncio.sleep(0.01)
        await channel.put({"type": "http.request", "body": b"three", "more_body": False})
        await asyncio.wait_for(feeding, 5)
        answer_ready.set()
        await asyncio.wait_for(serving, 5)
        return fed, sent

    fed, sent = asyncio.run(scenario())
    assert fed == [b"one", b"two", b"three"]
    assert b"".join(sent) == b"head-of-answerrest-of-answer"


class _FakeBackend:
    """Stands in for the ``git http-backend`` process: its CGI head is already in the stdout buffer (it writes it
    before reading its input); once its stdin is closed it answers with what it read and exits."""

    def __init__(self) -> None:
        self.stdout = asyncio.StreamReader()
        self.stdout.feed_data(b"Content-Type: application/x-git-upload-pack-result\r\n\r\n")
        self.stderr = asyncio.StreamReader()
        self.stderr.feed_eof()
        self.request = bytearray()
        self.stdin = self

    def write(self, data: bytes) -> None:
        self.request += data

    async def drain(self) -> None:
        pass

    def close(self) -> None:
        self.stdout.feed_data(b"answer to " + bytes(self.request))
        self.stdout.feed_eof()

    async def wait(self) -> int:
        return 0


def test_whole_small_body_reaches_the_cgi_when_its_head_was_already_buffered(monkeypatch):
    """A clone's request: the body came with the head, so uvicorn hands it over in one message, and the CGI head
    is buffered before ``_cgi`` reads it (a loaded machine, or simply a slow first request)."""
    spawned: list[_FakeBackend] = []

    async def spawn(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        spawned.append(_FakeBackend())
        return spawned[0]

    monkeypatch.setattr(git_http.asyncio, "create_subprocess_exec", spawn)
    body = b"0014command=ls-refs\n0001000fpeel\n0000"

    async def scenario() -> bytes:
        complete = asyncio.Event()
        messages = [{"type": "http.request", "body": body, "more_body": False}]
        sent: list[bytes] = []

        async def receive() -> dict:  # like uvicorn: the body, then a disconnect once the answer is complete
            if messages:
                return messages.pop(0)
            await complete.wait()
            return {"type": "http.disconnect"}

        async def send(message: dict) -> None:
            sent.append(message.get("body", b""))
            if message["type"] == "http.response.body" and not message.get("more_body", False):
                complete.set()

        scope = {"type": "http", "asgi": {"spec_version": "2.3"}, "method": "POST", "path": "/x/git-upload-pack",
                 "query_string": b"", "headers": [(b"content-length", str(len(body)).encode())],
                 "client": ("127.0.0.1", 1)}
        request = Request(scope, receive)
        # as in uvicorn: the endpoint and then its response run in one task, with no other task in between
        response = await git_http._cgi(request, Path("/nonexistent/repo"), "git-upload-pack", True, {})
        await response(scope, receive, send)
        return b"".join(sent)

    answer = asyncio.run(asyncio.wait_for(scenario(), 5))
    assert bytes(spawned[0].request) == body
    assert answer == b"answer to " + body
