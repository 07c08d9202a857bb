"""Small servers on 127.0.0.1 that speak the OpenAI Chat Completions and Anthropic Messages
wire formats, so the unmodified SDKs can be tested offline.

Each server plays `script`: one step per request — a `Reply`, an `Error`, a `Malformed`
body, or a function of the request body returning one of those. With the script used up it
answers with `default(body)`. Every request body is kept in `requests`.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import math
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web


@dataclass
class Reply:
    text: str
    finish: str | None = None
    delay: float = 0.0
    thinking: str | None = None  # Anthropic: a thinking block before the text
    cached_tokens: int = 0  # OpenAI: prompt_tokens_details.cached_tokens
    reasoning_tokens: int = 0  # OpenAI: completion_tokens_details.reasoning_tokens


@dataclass
class Error:
    status: int
    kind: str
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Malformed:
    body: str = '{"id": "broken", "choices": ['


Step = Reply | Error | Malformed | Callable[[dict[str, Any]], "Reply | Error | Malformed"]


def tokens(text: str) -> int:
    return math.ceil(len(text) / 4)


class WireServer:
    path = "/"

    def __init__(self, script: list[Step] | None = None, default: Callable[[dict[str, Any]], Step] | None = None):
        self.script = list(script or [])
        self.default = default or (lambda body: Reply("FINAL(default)"))
        self.requests: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []

    async def handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        self.requests.append(body)
        self.headers.append({k.lower(): v for k, v in request.headers.items()})
        step: Any = self.script.pop(0) if self.script else self.default(body)
        if callable(step):
            step = step(body)
        if isinstance(step, Error):
            return web.json_response(self.error_body(step), status=step.status, headers=step.headers)
        if isinstance(step, Malformed):
            return web.Response(text=step.body, content_type="application/json")
        await asyncio.sleep(step.delay)
        reply = self.reply_body(body, step)
        if not body.get("stream"):
            return web.json_response(reply)
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        for event, data in self.events(reply):
            head = f"event: {event}\n" if event else ""
            await response.write(f"{head}data: {data if isinstance(data, str) else json.dumps(data)}\n\n".encode())
        await response.write_eof()
        return response

    def error_body(self, error: Error) -> dict[str, Any]:
        raise NotImplementedError

    def reply_body(self, body: dict[str, Any], reply: Reply) -> dict[str, Any]:
        raise NotImplementedError

    def events(self, reply: dict[str, Any]) -> list[tuple[str | None, Any]]:
        """The reply as server-sent events: (event name or None, data)."""
        raise NotImplementedError

    @asynccontextmanager
    async def running(self) -> AsyncIterator[str]:
        """Serve on 127.0.0.1 at a free port; yield the base URL."""
        app = web.Application(client_max_size=1 << 30)
        app.router.add_post(self.path, self.handle)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        try:
            yield f"http://127.0.0.1:{port}"
        finally:
            await runner.cleanup()


class OpenAIServer(WireServer):
    path = "/v1/chat/completions"

    def error_body(self, error: Error) -> dict[str, Any]:
        return {"error": {"message": f"fake {error.kind}", "type": error.kind, "param": None, "code": error.kind}}

    def events(self, reply: dict[str, Any]) -> list[tuple[str | None, Any]]:
        choice = reply["choices"][0]
        chunk = {key: reply[key] for key in ("id", "created", "model")} | {"object": "chat.completion.chunk"}
        deltas = [{"role": "assistant", "content": part} for part in _halves(choice["message"]["content"])]
        events: list[tuple[str | None, Any]] = [
            (None, chunk | {"choices": [{"index": 0, "delta": delta, "finish_reason": None}]}) for delta in deltas
        ]
        events.append(
            (None, chunk | {"choices": [{"index": 0, "delta": {}, "finish_reason": choice["finish_reason"]}]})
        )
        events.append((None, chunk | {"choices": [], "usage": reply["usage"]}))
        events.append((None, "[DONE]"))
        return events

    def reply_body(self, body: dict[str, Any], reply: Reply) -> dict[str, Any]:
        prompt = sum(tokens(m["content"]) for m in body["messages"])
        cap = body.get("max_completion_tokens") or body.get("max_tokens") or 10**9
        text, finish = reply.text, reply.finish or "stop"
        if tokens(text) > cap:
            text, finish = text[: cap * 4], "length"
        completion = tokens(text) + reply.reasoning_tokens
        return {
            "id": f"chatcmpl-{len(self.requests)}",
            "object": "chat.completion",
            "created": 1_700_000_000,
            "model": body["model"],
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": text},
                    "finish_reason": finish,
                    "logprobs": None,
                }
            ],
            "usage": {
                "prompt_tokens": prompt,
                "completion_tokens": completion,
                "total_tokens": prompt + completion,
                "prompt_tokens_details": {"cached_tokens": reply.cached_tokens, "audio_tokens": 0},
                "completion_tokens_details": {"reasoning_tokens": reply.reasoning_tokens, "audio_tokens": 0},
            },
        }


def _halves(text: str) -> list[str]:
    return [text[: len(text) // 2], text[len(text) // 2 :]]


class AnthropicServer(WireServer):
    """Also keeps a prompt cache the way the Messages API documents it: a prefix ending at a
    `cache_control` breakpoint is written; a later request reads the longest written prefix
    found at a block boundary up to 20 blocks before one of its breakpoints."""

    path = "/v1/messages"
    MIN_CACHEABLE_TOKENS = 1024
    LOOKBACK_BLOCKS = 20

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.cache: set[str] = set()

    def error_body(self, error: Error) -> dict[str, Any]:
        return {"type": "error", "error": {"type": error.kind, "message": f"fake {error.kind}"}}

    def events(self, reply: dict[str, Any]) -> list[tuple[str | None, Any]]:
        usage = reply["usage"]
        start = {**reply, "content": [], "stop_reason": None, "usage": {**usage, "output_tokens": 1}}
        events: list[tuple[str | None, Any]] = [("message_start", {"type": "message_start", "message": start})]
        for index, block in enumerate(reply["content"]):
            kind = block["type"]
            empty = {"type": "text", "text": ""} if kind == "text" else {"type": kind, "thinking": "", "signature": ""}
            events.append(
                ("content_block_start", {"type": "content_block_start", "index": index, "content_block": empty})
            )
            for part in _halves(block["text" if kind == "text" else "thinking"]):
                delta = (
                    {"type": "text_delta", "text": part}
                    if kind == "text"
                    else {"type": "thinking_delta", "thinking": part}
                )
                events.append(("content_block_delta", {"type": "content_block_delta", "index": index, "delta": delta}))
            if kind == "thinking":
                delta = {"type": "signature_delta", "signature": block["signature"]}
                events.append(("content_block_delta", {"type": "content_block_delta", "index": index, "delta": delta}))
            events.append(("content_block_stop", {"type": "content_block_stop", "index": index}))
        stop = {"stop_reason": reply["stop_reason"], "stop_sequence": None}
        events.append(
            (
                "message_delta",
                {"type": "message_delta", "delta": stop, "usage": {"output_tokens": usage["output_tokens"]}},
            )
        )
        events.append(("message_stop", {"type": "message_stop"}))
        return events

    def _usage(self, body: dict[str, Any]) -> dict[str, int]:
        blocks = list(body.get("system") or []) + [b for m in body["messages"] for b in m["content"]]
        prefix_tokens, keys, digest = [], [], hashlib.sha256()
        for block in blocks:
            digest.update(json.dumps(block.get("text", ""), ensure_ascii=False).encode())
            keys.append(digest.hexdigest())
            prefix_tokens.append((prefix_tokens[-1] if prefix_tokens else 0) + tokens(block.get("text", "")))
        breakpoints = [i for i, b in enumerate(blocks) if "cache_control" in b]
        read = 0
        for point in breakpoints:
            for i in range(point, max(-1, point - self.LOOKBACK_BLOCKS), -1):
                if keys[i] in self.cache:
                    read = max(read, prefix_tokens[i])
                    break
        written = 0
        if breakpoints and prefix_tokens[breakpoints[-1]] >= self.MIN_CACHEABLE_TOKENS:
            for point in breakpoints:
                self.cache.add(keys[point])
            written = max(0, prefix_tokens[breakpoints[-1]] - read)
        total = prefix_tokens[-1] if prefix_tokens else 0
        return {
            "input_tokens": total - read - written,
            "cache_read_input_tokens": read,
            "cache_creation_input_tokens": written,
        }

    def reply_body(self, body: dict[str, Any], reply: Reply) -> dict[str, Any]:
        text, finish = reply.text, reply.finish or "end_turn"
        if tokens(text) > body["max_tokens"]:
            text, finish = text[: body["max_tokens"] * 4], "max_tokens"
        content: list[dict[str, Any]] = []
        if reply.thinking is not None:
            content.append({"type": "thinking", "thinking": reply.thinking, "signature": "sig"})
        content.append({"type": "text", "text": text})
        return {
            "id": f"msg_{len(self.requests)}",
            "type": "message",
            "role": "assistant",
            "model": body["model"],
            "content": content,
            "stop_reason": finish,
            "stop_sequence": None,
            "usage": {**self._usage(body), "output_tokens": tokens(text)},
        }
