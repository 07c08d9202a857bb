"""OpenAIProvider: Chat Completions through the official `openai` SDK (AsyncOpenAI).

Also any OpenAI-compatible server through `base_url` (vLLM, Ollama, llama.cpp, OpenRouter).
Retries are the SDK's own (`max_retries`, honouring Retry-After); errors map to ours.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import openai

from rlm_async.errors import ProviderError
from rlm_async.providers.base import Completion, Message, TokenUsage
from rlm_async.providers.pricing import Prices
from rlm_async.providers.sdk import SDKProvider, map_sdk_error

FINISH_REASONS = {"stop": "stop", "length": "length", "content_filter": "refusal"}


class OpenAIProvider(SDKProvider):
    """One model over the Chat Completions API.

    `base_url` points at a compatible server; the key is `api_key`, else $OPENAI_API_KEY
    (a custom server without one gets a placeholder). `reasoning_effort` is passed through
    for reasoning models. `max_tokens_field` is the request field that caps the output:
    "max_completion_tokens" for api.openai.com, "max_tokens" (default with a `base_url`)
    for servers that predate it. `prices` overrides the genai-prices database.
    `stream=True` reads the reply as server-sent events (usage included), which keeps long
    generations alive behind proxies that cut idle connections.
    """

    kind = "openai"
    key_variable = "OPENAI_API_KEY"

    def __init__(
        self,
        model: str,
        *,
        base_url: str | None = None,
        api_key: str | None = None,
        timeout: float = 600.0,
        max_retries: int = 2,
        reasoning_effort: str | None = None,
        max_tokens_field: str | None = None,
        prices: Prices | None = None,
        stream: bool = False,
        extra_body: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(model, base_url=base_url, api_key=api_key, prices=prices, stream=stream, extra_body=extra_body)
        self.client = openai.AsyncOpenAI(
            api_key=self.api_key, base_url=base_url, timeout=timeout, max_retries=max_retries
        )
        self.reasoning_effort = reasoning_effort
        self.max_tokens_field = max_tokens_field or ("max_tokens" if base_url else "max_completion_tokens")

    async def complete(self, messages: Sequence[Message], *, max_output_tokens: int) -> Completion:
        options: dict[str, Any] = {self.max_tokens_field: max_output_tokens}
        if self.reasoning_effort is not None:
            options["reasoning_effort"] = self.reasoning_effort
        request: dict[str, Any] = {
            "model": self.model,
            "messages": [{"role": m.role, "content": m.content} for m in messages],
            "extra_body": self.extra_body,
            **options,
        }
        try:
            if self.stream:
                text, finish, usage, model = await self._streamed(request)
            else:
                response = await self.client.chat.completions.create(**request)
                choice = response.choices[0]
                text, finish, usage, model = (
                    choice.message.content,
                    choice.finish_reason,
                    response.usage,
                    response.model,
                )
        except Exception as exc:
            raise map_sdk_error(openai, self.name, exc) from exc
        return Completion(
            text=text or "",
            usage=_usage(usage),
            model=model or self.model,
            finish_reason=FINISH_REASONS.get(finish or "stop", finish or "stop"),
        )

    async def _streamed(self, request: dict[str, Any]) -> tuple[str, str | None, Any, str | None]:
        """The reply read as server-sent events; usage arrives in the last one."""
        parts: list[str] = []
        finish, usage, model = None, None, None
        stream = await self.client.chat.completions.create(
            **request, stream=True, stream_options={"include_usage": True}
        )
        async for chunk in stream:
            model = chunk.model or model
            usage = chunk.usage or usage
            if chunk.choices:
                parts.append(chunk.choices[0].delta.content or "")
                finish = chunk.choices[0].finish_reason or finish
        return "".join(parts), finish, usage, model


def _usage(usage: Any) -> TokenUsage:
    if usage is None:
        raise ProviderError("the response reported no token usage, so the budget cannot count it")
    cached = getattr(usage.prompt_tokens_details, "cached_tokens", None) or 0
    reasoning = getattr(usage.completion_tokens_details, "reasoning_tokens", None) or 0
    return TokenUsage(
        input_tokens=usage.prompt_tokens,
        output_tokens=usage.completion_tokens,
        cached_input_tokens=cached,
        reasoning_tokens=reasoning,
    )
