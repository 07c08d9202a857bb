"""Messages between the host and the REPL runtime, and their framing. Standard library only:
this module also runs inside environments, next to `runtime.py`.

One exchange per cell::

    host → runtime   init  {context_path, context_kind, output_limit, memory_limit}  (once)
    runtime → host   ready {error}
    host → runtime   exec  {cell, code, timeout}
    runtime → host   call  {id, fn, prompts, contexts, model}      (0..n, while the cell runs)
    host → runtime   reply {id, results: [{ok, text}]}             (one per call, any order)
    runtime → host   done  {cell, stdout, stderr, stdout_chars, stderr_chars, error, final, draft, timed_out}

On a byte stream each message is a frame: a 4-byte big-endian length, then UTF-8 JSON.
"""

from __future__ import annotations

import json
import struct
from typing import Any, Literal, TypedDict

CALL_FUNCTIONS = ("llm_query", "llm_query_batched", "rlm_query", "rlm_query_batched")
MAX_FRAME_BYTES = 1 << 31

Message = dict[str, Any]


class Result(TypedDict):
    """One sub-call answer: the model's text, or an error message when `ok` is false."""

    ok: bool
    text: str


class Done(TypedDict):
    type: Literal["done"]
    cell: int
    stdout: str
    stderr: str
    stdout_chars: int
    stderr_chars: int
    error: str | None
    final: str | None
    draft: str | None
    timed_out: bool


_HEADER = struct.Struct(">I")


def encode_frame(message: Message) -> bytes:
    body = json.dumps(message, ensure_ascii=False).encode("utf-8", "surrogatepass")
    if len(body) >= MAX_FRAME_BYTES:
        raise ValueError(f"message of {len(body)} bytes is too large to send")
    return _HEADER.pack(len(body)) + body


class FrameDecoder:
    """Turns received bytes, in chunks of any size, into whole messages."""

    def __init__(self) -> None:
        self._buffer = bytearray()

    def feed(self, data: bytes) -> list[Message]:
        self._buffer += data
        messages = []
        while len(self._buffer) >= _HEADER.size:
            (size,) = _HEADER.unpack_from(self._buffer)
            end = _HEADER.size + size
            if len(self._buffer) < end:
                break
            messages.append(json.loads(bytes(self._buffer[_HEADER.size : end])))
            del self._buffer[:end]
        return messages
