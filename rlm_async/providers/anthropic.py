"""AnthropicProvider: the Messages API through the official `anthropic` SDK (AsyncAnthropic).

An RLM resends a growing history every turn, so prompt caching is the biggest cost lever:
two cache breakpoints mark the system prompt and the newest message, so each turn reads the
whole earlier conversation from the cache and writes only what is new.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import anthropic

from rlm_async.providers.base import Completion, Message, TokenUsage
from rlm_async.providers.pricing import Prices
from rlm_async.providers.sdk import SDKProvider, map_sdk_error

CACHE = {"type": "ephemeral"}
STOP_REASONS = {"end_turn": "stop", "stop_sequence": "stop", "max_tokens": "length", "refusal": "refusal"}


class AnthropicProvider(SDKProvider):
    """One Claude model over the Messages API.

    The key is `api_key`, else $ANTHROPIC_API_KEY (a custom `base_url` without one gets a
    placeholder). `prompt_caching=False` turns the cache breakpoints off. Thinking blocks are
    never part of the answer. `prices` overrides the genai-prices database. `stream=True` reads
    the reply as server-sent events; the SDK requires it when `max_output_tokens` is so large
    that a reply could take over ten minutes.
    """

    kind = "anthropic"
    key_variable = "ANTHROPIC_API_KEY"

    def __init__(
        self,
        model: str,
        *,
        base_url: str | None = None,
        api_key: str | None = None,
        timeout: float = 600.0,
        max_retries: int = 2,
        prompt_caching: bool = True,
        prices: Prices | None = None,
        stream: bool = False,
        extra_body: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(model, base_url=base_url, api_key=api_key, prices=prices, stream=stream, extra_body=extra_body)
        self.client = anthropic.AsyncAnthropic(
            api_key=self.api_key, base_url=base_url, timeout=timeout, max_retries=max_retries
        )
        self.prompt_caching = prompt_caching

    def request(self, messages: Sequence[Message]) -> dict[str, Any]:
        """The `system` and `messages` arguments, with cache breakpoints when caching is on."""
        system = [{"type": "text", "text": m.content} for m in messages if m.role == "system"]
        turns: list[dict[str, Any]] = [
            {"role": m.role, "content": [{"type": "text", "text": m.content}]} for m in messages if m.role != "system"
        ]
        if self.prompt_caching:
            for block in system[-1:] + (turns[-1]["content"] if turns else []):
                block["cache_control"] = CACHE
        return {"system": system, "messages": turns}

    async def complete(self, messages: Sequence[Message], *, max_output_tokens: int) -> Completion:
        request: dict[str, Any] = {"model": self.model, "max_tokens": max_output_tokens, "extra_body": self.extra_body}
        request.update(self.request(messages))
        try:
            if self.stream:
                async with self.client.messages.stream(**request) as events:
                    response = await events.get_final_message()
            else:
                response = await self.client.messages.create(**request)
        except Exception as exc:
            raise map_sdk_error(anthropic, self.name, exc) from exc
        text = "".join(block.text for block in response.content if block.type == "text")
        return Completion(
            text=text,
            usage=_usage(response.usage),
            model=response.model or self.model,
            finish_reason=STOP_REASONS.get(response.stop_reason or "end_turn", response.stop_reason or "stop"),
        )


def _usage(usage: Any) -> TokenUsage:
    """Anthropic's `input_tokens` leaves out cache reads and writes; ours includes them."""
    read = usage.cache_read_input_tokens or 0
    written = usage.cache_creation_input_tokens or 0
    return TokenUsage(
        input_tokens=usage.input_tokens + read + written,
        output_tokens=usage.output_tokens,
        cached_input_tokens=read,
        cache_write_tokens=written,
    )
