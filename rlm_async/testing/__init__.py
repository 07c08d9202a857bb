"""Providers for testing pipelines built on rlm-async, with no model API involved.

`ScriptedProvider` plays a list of steps in order; `FunctionProvider` answers with a function.
Both count tokens roughly (4 characters a token), honour `max_output_tokens`, can add a fixed
latency, and can be given prices so dollar limits can be tested.
"""

from rlm_async.testing.providers import FunctionProvider, ScriptedProvider, Step

__all__ = ["FunctionProvider", "ScriptedProvider", "Step"]
