"""The public API is curated: changing it must be deliberate."""

from __future__ import annotations

import subprocess
import sys

import rlm_async
import rlm_async.testing


def test_top_level_names() -> None:
    assert sorted(rlm_async.__all__) == sorted(
        [
            "RLM", "RLMResult", "Limits", "Usage", "UsageTotals", "Budget", "Trace",
            "Provider", "Message", "Completion", "TokenUsage",
            "Environment", "ExecResult", "LocalEnvironment", "EnvironmentSlots",
            "RLMError", "ConfigurationError", "ContextError", "LimitReached", "BudgetExceeded",
            "ProviderError", "EnvironmentFailed",
        ]
    )  # fmt: skip
    for name in rlm_async.__all__:
        assert getattr(rlm_async, name) is not None


def test_testing_names() -> None:
    assert sorted(rlm_async.testing.__all__) == ["FunctionProvider", "ScriptedProvider", "Step"]


def test_importing_the_core_does_not_import_provider_sdks() -> None:
    code = "import sys, rlm_async; print(sorted(m for m in ('openai', 'anthropic') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
