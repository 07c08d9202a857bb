"""The trace viewer, opened in headless Chromium (Debian's, driven by Playwright)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import anyio
import pytest

from rlm_async import RLM, Limits, Trace
from rlm_async.viewer import render_html
from tests.test_cli import cli
from tests.test_events import tree_model

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync"]  # fmt: skip
SCREENSHOTS = Path(os.environ.get("RLM_ASYNC_TEST_OUTPUT", Path(__file__).parents[1] / "test-output"))

needs_chromium = pytest.mark.skipif(
    CHROMIUM is None and os.environ.get("CI") != "true",
    reason="needs Debian's chromium (apt-get install chromium); .ci/run installs it",
)


@pytest.fixture
async def trace_file(tmp_path: Path) -> Path:
    result = await RLM(tree_model(), limits=Limits(max_depth=2)).completion("How many words?", "ctx </script> here")
    path = tmp_path / "trace.jsonl"
    result.trace.save(path)
    return path


async def test_view_command_writes_one_self_contained_page(trace_file: Path) -> None:
    code, out, _ = await cli("view", str(trace_file))
    page = trace_file.with_suffix(".html")
    assert code == 0 and out.strip() == str(page)
    html = page.read_text()
    assert "<script src" not in html and "http://" not in html.replace("http://www.w3.org/2000/svg", "")
    assert "</script> here" not in html  # text from the trace cannot close the page's script
    code, _, err = await cli("view", str(trace_file.with_name("missing.jsonl")))
    assert code == 2 and "not a readable trace" in err


@needs_chromium
async def test_viewer_in_chromium(trace_file: Path) -> None:
    from playwright.async_api import async_playwright

    page_path = trace_file.with_suffix(".html")
    page_path.write_text(render_html(Trace.load(trace_file)))
    errors: list[str] = []
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=FLAGS)
        page = await browser.new_page(viewport={"width": 1280, "height": 900})
        page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
        page.on("pageerror", lambda error: errors.append(str(error)))
        await page.goto(page_path.as_uri())
        agents = page.locator("button.agent")
        assert await agents.count() == 3
        assert "Answer: done" in await page.locator("#answer").inner_text()
        assert "depth 0" in (await page.locator("#detail-title").text_content() or "")
        await agents.nth(1).click()  # expand a child: its turns, code and output appear
        assert await agents.nth(1).get_attribute("aria-selected") == "true"
        detail = await page.locator("#detail").inner_text()
        assert "llm_query('leaf')" in detail and "leaf answer" in detail
        assert await page.locator("svg rect.bar.sub").count() >= 3
        model_calls = sum(1 for e in Trace.load(trace_file).events if e.kind == "model_called")
        assert await page.locator("svg rect.bar.model").count() == model_calls
        await anyio.Path(SCREENSHOTS).mkdir(parents=True, exist_ok=True)
        await page.screenshot(path=str(SCREENSHOTS / "viewer.png"), full_page=True)
        await browser.close()
    assert errors == []
