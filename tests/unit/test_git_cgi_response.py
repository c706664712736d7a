"""The streamed answer of ``git http-backend`` must not read the request channel while the body is being fed.

Regression for fetches and pushes stalling after the response head: Starlette's StreamingResponse watches for a
disconnect by calling ``receive()`` while it streams; a body piece that watch takes never reaches git, which then
waits forever for the end of its input."""

from __future__ import annotations

import asyncio

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
