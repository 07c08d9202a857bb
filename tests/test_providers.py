"""The OpenAI and Anthropic adapters, through the unmodified SDKs, against wire servers on 127.0.0.1."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

import pytest

from rlm_async import RLM, ConfigurationError, Limits, ProviderError
from rlm_async.errors import ProviderAuthError, ProviderTimeout, RateLimited, RequestRejected
from rlm_async.providers.anthropic import AnthropicProvider
from rlm_async.providers.base import Message, TokenUsage
from rlm_async.providers.openai import OpenAIProvider
from rlm_async.providers.pricing import Prices
from rlm_async.providers.registry import provider_from
from tests.wire_servers import AnthropicServer, Error, Malformed, OpenAIServer, Reply, WireServer

CONVERSATION = [Message("system", "You are terse."), Message("user", "Say hi."), Message("assistant", "Hi."),
                Message("user", "Again.")]  # fmt: skip

KINDS = ["openai", "anthropic"]
SONNET_PRICES = Prices(input=3.0, output=15.0, cached_input=0.30, cache_write=3.75)


def server_for(kind: str, script: list[Any] | None = None, **kwargs: Any) -> WireServer:
    return (OpenAIServer if kind == "openai" else AnthropicServer)(script, **kwargs)


def provider_for(kind: str, url: str, **options: Any) -> OpenAIProvider | AnthropicProvider:
    if kind == "openai":
        return OpenAIProvider("gpt-4o-mini", base_url=f"{url}/v1", api_key="sk-test", **options)
    return AnthropicProvider("claude-sonnet-4-6", base_url=url, api_key="sk-ant-test", **options)


@pytest.fixture(params=KINDS)
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


async def complete(kind: str, script: list[Any], **options: Any) -> tuple[Any, WireServer]:
    server = server_for(kind, script)
    async with server.running() as url:
        provider = provider_for(kind, url, **options)
        return await provider.complete(CONVERSATION, max_output_tokens=50), server


# -- replies -----------------------------------------------------------------------------------
async def test_openai_request_and_usage() -> None:
    completion, server = await complete("openai", [Reply("Hello there", cached_tokens=3, reasoning_tokens=7)])
    body = server.requests[0]
    assert body["messages"][0] == {"role": "system", "content": "You are terse."}
    assert body["max_tokens"] == 50 and "max_completion_tokens" not in body
    assert server.headers[0]["authorization"] == "Bearer sk-test"
    assert (completion.text, completion.model, completion.finish_reason) == ("Hello there", "gpt-4o-mini", "stop")
    assert completion.usage == TokenUsage(input_tokens=9, output_tokens=10, cached_input_tokens=3, reasoning_tokens=7)


async def test_openai_reasoning_parameters() -> None:
    _, server = await complete(
        "openai", [Reply("ok")], reasoning_effort="low", max_tokens_field="max_completion_tokens"
    )
    assert server.requests[0]["reasoning_effort"] == "low"
    assert server.requests[0]["max_completion_tokens"] == 50 and "max_tokens" not in server.requests[0]


async def test_anthropic_request_usage_and_thinking_kept_out() -> None:
    server = AnthropicServer([Reply("Hello", thinking="secret reasoning")])
    server.MIN_CACHEABLE_TOKENS = 1
    async with server.running() as url:
        provider = provider_for("anthropic", url)
        first = await provider.complete(CONVERSATION, max_output_tokens=50)
        second = await provider.complete(CONVERSATION, max_output_tokens=50)
    body = server.requests[0]
    assert body["system"] == [{"type": "text", "text": "You are terse.", "cache_control": {"type": "ephemeral"}}]
    assert [m["role"] for m in body["messages"]] == ["user", "assistant", "user"]
    assert body["messages"][-1]["content"][-1]["cache_control"] == {"type": "ephemeral"}
    assert "cache_control" not in body["messages"][0]["content"][0]
    assert body["max_tokens"] == 50
    assert "sk-ant-test" in server.headers[0].get("x-api-key", "") + server.headers[0].get("authorization", "")
    assert (first.text, first.finish_reason) == ("Hello", "stop")
    assert first.usage.cache_write_tokens == first.usage.input_tokens == 9
    assert second.usage.cached_input_tokens == second.usage.input_tokens == 9


@pytest.mark.parametrize("stream", [False, True])
async def test_streamed_and_whole_replies_give_the_same_completion(kind: str, stream: bool) -> None:
    script = [Reply("Hello streaming world", thinking="hidden", cached_tokens=2, reasoning_tokens=3)]
    completion, server = await complete(kind, script, stream=stream)
    assert server.requests[0].get("stream", False) is stream
    assert (completion.text, completion.finish_reason) == ("Hello streaming world", "stop")
    expected = (9, 9) if kind == "openai" else (9, 6)
    assert (completion.usage.input_tokens, completion.usage.output_tokens) == expected
    if kind == "openai":
        assert (completion.usage.cached_input_tokens, completion.usage.reasoning_tokens) == (2, 3)
        assert server.requests[0].get("stream_options") == ({"include_usage": True} if stream else None)


async def test_streamed_reply_cut_at_the_cap(kind: str) -> None:
    completion, _ = await complete(kind, [Reply("z" * 400)], stream=True)
    assert (completion.finish_reason, completion.usage.output_tokens, len(completion.text)) == ("length", 50, 200)


async def test_caching_can_be_turned_off() -> None:
    _, server = await complete("anthropic", [Reply("x")], prompt_caching=False)
    assert "cache_control" not in str(server.requests[0])


async def test_output_cap_maps_to_length(kind: str) -> None:
    completion, _ = await complete(kind, [Reply("y" * 400)])
    assert (completion.finish_reason, completion.usage.output_tokens) == ("length", 50)


# -- failures ----------------------------------------------------------------------------------
async def test_retry_after_is_honoured(kind: str) -> None:
    started = time.monotonic()
    completion, server = await complete(kind, [Error(429, "rate_limit_error", {"retry-after": "1"}), Reply("ok")])
    assert completion.text == "ok" and len(server.requests) == 2
    assert time.monotonic() - started >= 1.0


@pytest.mark.parametrize(
    ("status", "kind_name", "error", "attempts"),
    [
        (429, "rate_limit_error", RateLimited, 2),
        (500, "api_error", ProviderError, 2),
        (529, "overloaded_error", ProviderError, 2),
        (401, "authentication_error", ProviderAuthError, 1),
        (403, "permission_error", ProviderAuthError, 1),
        (400, "invalid_request_error", RequestRejected, 1),
        (404, "not_found_error", RequestRejected, 1),
    ],
)
async def test_failures_map_to_our_errors(kind: str, status: int, kind_name: str, error: type, attempts: int) -> None:
    script = [Error(status, kind_name, {"retry-after-ms": "10"})] * 3
    with pytest.raises(error) as raised:
        await complete(kind, script, max_retries=1)
    assert type(raised.value) is error
    assert str(status) in str(raised.value)
    assert raised.value.__cause__ is not None


async def test_server_error_is_retried_by_the_sdk(kind: str) -> None:
    completion, server = await complete(kind, [Error(500, "api_error", {"retry-after-ms": "10"}), Reply("ok")])
    assert completion.text == "ok" and len(server.requests) == 2


async def test_timeout(kind: str) -> None:
    server = server_for(kind, [Reply("late", delay=3)])
    async with server.running() as url:
        provider = provider_for(kind, url, timeout=0.3, max_retries=0)
        started = time.monotonic()
        with pytest.raises(ProviderTimeout):
            await provider.complete(CONVERSATION, max_output_tokens=5)
        assert time.monotonic() - started < 2


async def test_malformed_body(kind: str) -> None:
    with pytest.raises(ProviderError) as raised:
        await complete(kind, [Malformed()], max_retries=0)
    assert type(raised.value) is ProviderError


async def test_connection_refused(kind: str) -> None:
    provider = provider_for(kind, "http://127.0.0.1:9", max_retries=0)
    with pytest.raises(ProviderError, match="Connection"):
        await provider.complete(CONVERSATION, max_output_tokens=5)


# -- model strings, keys, prices -------------------------------------------------------------------
def test_model_strings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-env")
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-env")
    hosted = provider_from("openai:gpt-5-mini")
    assert isinstance(hosted, OpenAIProvider) and hosted.client.api_key == "sk-env" and hosted.base_url is None
    assert hosted.max_tokens_field == "max_completion_tokens"
    local = provider_from("openai:qwen@http://127.0.0.1:8080/v1")
    assert isinstance(local, OpenAIProvider) and str(local.client.base_url) == "http://127.0.0.1:8080/v1/"
    claude = provider_from("anthropic:claude-sonnet-4-6")
    assert isinstance(claude, AnthropicProvider) and claude.client.api_key == "sk-ant-env"
    assert provider_from("anthropic:m", base_url="http://127.0.0.1:1").base_url == "http://127.0.0.1:1"  # type: ignore[attr-defined]


@pytest.mark.parametrize("spec", ["gpt-5", "mistral:large", "openai:", "openai:m@", ":m", 42])
def test_bad_model_strings(spec: object) -> None:
    with pytest.raises(ConfigurationError):
        provider_from(spec)  # type: ignore[arg-type]


def test_missing_key_is_a_configuration_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    with pytest.raises(ConfigurationError, match=r"\$OPENAI_API_KEY"):
        provider_from("openai:gpt-5-mini")
    with pytest.raises(ConfigurationError, match=r"\$ANTHROPIC_API_KEY"):
        provider_from("anthropic:claude-sonnet-4-6")
    assert isinstance(provider_from("openai:local@http://127.0.0.1:1/v1"), OpenAIProvider)


def test_prices_from_the_database_and_from_the_user() -> None:
    known = OpenAIProvider("gpt-4o-mini", api_key="k")
    assert known.cost_usd(TokenUsage(1_000_000, 1_000_000)) == pytest.approx(0.15 + 0.60)
    assert known.cost_usd(TokenUsage(1_000_000, 0, cached_input_tokens=1_000_000)) == pytest.approx(0.075)
    unknown = OpenAIProvider("my-local-model", base_url="http://127.0.0.1:1/v1")
    assert unknown.cost_usd(TokenUsage(10, 10)) is None
    given = OpenAIProvider("my-local-model", base_url="http://127.0.0.1:1/v1", prices=Prices(1.0, 2.0, 0.5, 1.5))
    usage = TokenUsage(4_000_000, 1_000_000, cached_input_tokens=1_000_000, cache_write_tokens=1_000_000)
    assert given.cost_usd(usage) == pytest.approx(2 * 1.0 + 0.5 + 1.5 + 2.0)
    with pytest.raises(ConfigurationError, match=r"Prices\.input"):
        Prices(-1.0, 1.0)


def test_dollar_limit_needs_a_known_price() -> None:
    with pytest.raises(ConfigurationError, match="no known price"):
        RLM("openai:my-local-model@http://127.0.0.1:1/v1", limits=Limits(max_cost_usd=1.0))
    priced = OpenAIProvider("my-local-model", base_url="http://127.0.0.1:1/v1", prices=Prices(0.1, 0.2))
    RLM(priced, limits=Limits(max_cost_usd=1.0))


# -- whole runs through each SDK ---------------------------------------------------------------------
@pytest.fixture
async def served(kind: str) -> AsyncIterator[tuple[str, WireServer]]:
    def respond(body: dict[str, Any]) -> Reply:
        messages = body["messages"]
        if not body.get("system") and messages[0]["role"] != "system":  # llm_query
            return Reply("sub answer")
        if "output:" not in str(messages[-1]):
            return Reply("```repl\nprint(llm_query('hi'), len(context))\n```")
        return Reply("FINAL(42)")

    server = server_for(kind, default=respond)
    async with server.running() as url:
        yield url, server


async def test_whole_run_counts_exactly_what_the_server_reported(kind: str, served: tuple[str, WireServer]) -> None:
    url, server = served
    spec = f"openai:gpt-4o-mini@{url}/v1" if kind == "openai" else f"anthropic:claude-sonnet-4-6@{url}"
    async with RLM(spec, limits=Limits(max_calls=10)) as rlm:
        result = await rlm.completion("What?", "some context")
    assert (result.answer, result.stop_reason) == ("42", "final")
    assert result.usage.calls == len(server.requests) == 3
    sent = sum(r.input_tokens for r in result.trace.events if r.kind == "model_called")  # type: ignore[attr-defined]
    assert result.usage.input_tokens == sent
    assert result.cost_usd is None  # a server of our own has no known price
    assert result.usage.by_depth[1].calls == 1


async def test_caching_saves_on_a_long_run() -> None:
    """An RLM conversation grows every turn; with cache breakpoints most of it is read from cache."""
    costs = {}
    for caching in (True, False):
        turn = 0

        def respond(body: dict[str, Any]) -> Reply:
            nonlocal turn
            turn += 1
            if turn < 8:
                return Reply(f"```repl\nprint(context[{turn * 3000}:{turn * 3000 + 3000}])\n```")
            return Reply("FINAL(done)")

        server = AnthropicServer(default=respond)
        async with server.running() as url:
            provider = AnthropicProvider(
                "claude-sonnet-4-6", base_url=url, api_key="k", prompt_caching=caching, prices=SONNET_PRICES
            )
            result = await RLM(provider).completion("Summarise.", "lorem ipsum dolor " * 3000)
            await provider.aclose()
        costs[caching] = result.cost_usd
        if caching:
            assert result.usage.cached_input_tokens > result.usage.input_tokens / 2
    saving = 1 - costs[True] / costs[False]  # type: ignore[operator]
    print(f"prompt caching saved {saving:.0%} over 8 turns (${costs[True]:.4f} vs ${costs[False]:.4f})")
    assert saving > 0.4
