"""The context a REPL holds: validation, a description for the model, and the file it travels in.

Accepted: a non-empty str (or UTF-8 bytes), a non-empty list of str, or a non-empty dict that
JSON can encode. A context always travels to an environment as a file, never inlined in code.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from rlm_async.errors import ContextError

ContextValue = str | list[str] | dict[str, Any]
WRITE_CHUNK_CHARS = 1 << 20  # small enough for malloc to reuse one buffer: fresh pages are slow
PREVIEW_CHARS = 500


@dataclass(frozen=True, slots=True)
class Context:
    value: ContextValue

    @classmethod
    def of(cls, value: object) -> Context:
        """Validate what a caller passed; raise ContextError if a REPL cannot hold it."""
        if isinstance(value, (bytes, bytearray, memoryview)):
            try:
                value = bytes(value).decode("utf-8")
            except UnicodeDecodeError as exc:
                raise ContextError(f"context bytes are not valid UTF-8 (at byte {exc.start})") from exc
        if isinstance(value, list):
            bad = next((i for i, item in enumerate(value) if not isinstance(item, str)), None)
            if bad is not None:
                raise ContextError(f"a list context must hold only str; item {bad} is {type(value[bad]).__name__}")
        elif not isinstance(value, (str, dict)):
            raise ContextError(f"context must be str, bytes, list[str] or dict, not {type(value).__name__}")
        if not value:
            raise ContextError(f"context is an empty {type(value).__name__}")
        return cls(value)

    @property
    def kind(self) -> Literal["str", "json"]:
        return "str" if isinstance(self.value, str) else "json"

    def write(self, path: Path) -> None:
        """Write the context to `path` as UTF-8 text (str) or JSON, in chunks: no second copy."""
        try:
            with path.open("wb") as f:
                if isinstance(self.value, str):
                    for start in range(0, len(self.value), WRITE_CHUNK_CHARS):
                        f.write(self.value[start : start + WRITE_CHUNK_CHARS].encode("utf-8"))
                else:
                    for chunk in json.JSONEncoder(ensure_ascii=False).iterencode(self.value):
                        f.write(chunk.encode("utf-8"))
        except UnicodeEncodeError as exc:
            raise ContextError(f"context holds text that is not valid Unicode: {exc.reason}") from exc
        except (TypeError, ValueError) as exc:
            raise ContextError(f"context cannot be encoded as JSON: {exc}") from exc

    def describe(self) -> str:
        """What the model is told about `context` before it looks."""
        value = self.value
        if isinstance(value, str):
            head = f"`context` is a str of {len(value):,} characters."
            return f"{head}\nIts first {PREVIEW_CHARS} characters:\n{_preview(value)}"
        if isinstance(value, list):
            lengths = [len(item) for item in value]
            shown = ", ".join(f"{n:,}" for n in lengths[:20]) + (", …" if len(lengths) > 20 else "")
            return (
                f"`context` is a list of {len(value):,} str items, {sum(lengths):,} characters in all.\n"
                f"Item lengths: [{shown}]\nThe start of item 0:\n{_preview(value[0])}"
            )
        keys = list(value)
        shown = ", ".join(repr(k) for k in keys[:20]) + (", …" if len(keys) > 20 else "")
        text = json.dumps(value, ensure_ascii=False, default=str)
        return (
            f"`context` is a dict with {len(keys):,} keys, {len(text):,} characters as JSON.\n"
            f"Keys: [{shown}]\nThe start of its JSON:\n{_preview(text)}"
        )


def _preview(text: str) -> str:
    return text[:PREVIEW_CHARS] + ("…" if len(text) > PREVIEW_CHARS else "")
