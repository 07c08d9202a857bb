"""Reading model replies: fences, FINAL forms, feedback truncation."""

from __future__ import annotations

import pytest

from rlm_async import dialect
from rlm_async.dialect import FinalMark
from rlm_async.environments.base import ExecResult


def test_repl_python_and_py_blocks_run_in_order_other_fences_do_not() -> None:
    reply = "a\n```repl\nx = 1\n```\n```json\n{}\n```\n```python\ny = 2\n```\n```\nplain\n```\n```py\nz = 3\n```"
    assert dialect.parse_reply(reply).code == ["x = 1\n", "y = 2\n", "z = 3\n"]


def test_indented_and_spaced_fences() -> None:
    assert dialect.parse_reply("  ``` repl\nprint(1)\n  ```").code == ["print(1)\n"]


def test_unclosed_code_fence_is_flagged_and_not_run() -> None:
    parsed = dialect.parse_reply("```repl\nprint('half")
    assert parsed.unclosed and parsed.code == []


def test_unclosed_prose_fence_is_not_an_error() -> None:
    assert not dialect.parse_reply("```text\nno end").unclosed


@pytest.mark.parametrize(
    ("reply", "mark"),
    [
        ("Done.\nFINAL(42)", FinalMark("text", "42")),
        ('FINAL("quoted, with (parens)")', FinalMark("text", "quoted, with (parens)")),
        ("FINAL(multi\nline answer)", FinalMark("text", "multi\nline answer")),
        ("FINAL_VAR(result)", FinalMark("var", "result")),
        ("FINAL_VAR('result')", FinalMark("var", "result")),
        ('  FINAL_VAR( "r2" )', FinalMark("var", "r2")),
    ],
)
def test_final_outside_code(reply: str, mark: FinalMark) -> None:
    assert dialect.parse_reply(reply).final == mark


def test_final_inside_code_or_mid_sentence_is_not_a_text_final() -> None:
    assert dialect.parse_reply("```repl\nFINAL('x')\n```").final is None
    assert dialect.parse_reply("I will call FINAL(x) later").final is None


def test_reply_with_nothing() -> None:
    parsed = dialect.parse_reply("I think the answer is in chapter 3.")
    assert (parsed.code, parsed.final, parsed.unclosed) == ([], None, False)


def test_feedback_cuts_and_says_how_much() -> None:
    result = ExecResult(stdout="a" * 1000, stdout_chars=5000, error="Boom")
    text = dialect.feedback([result], max_chars=300)
    assert "a" * 300 in text and "a" * 301 not in text
    assert "4,700 more characters not shown" in text and "Boom" in text


def test_feedback_shares_the_cap_between_blocks() -> None:
    results = [ExecResult(stdout="z" * 900, stdout_chars=900)] * 3
    text = dialect.feedback(results, max_chars=900)
    assert text.count("z") == 900 and text.count("600 more characters") == 3


def test_feedback_for_silent_cell() -> None:
    assert "(no output)" in dialect.feedback([ExecResult()], 100)


def test_system_prompt_mentions_every_helper_and_adapts_to_depth() -> None:
    deep = dialect.system_prompt(can_recurse=True, model_names=["a", "b"])
    leaf = dialect.system_prompt(can_recurse=False, model_names=["a"])
    for name in (
        "llm_query",
        "llm_query_batched",
        "rlm_query",
        "rlm_query_batched",
        "FINAL",
        "FINAL_VAR",
        "SHOW_VARS",
        "answer",
        "context",
    ):
        assert name in deep
    assert "child agent" in deep and "same as llm_query" in leaf
    assert "'a', 'b'" in deep and "model= may name" not in leaf
