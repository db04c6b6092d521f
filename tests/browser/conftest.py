"""Browser tests: the real app served by Hypercorn on a free port, an outreach worker, and
Debian's chromium driven by Playwright (`executable_path`; Playwright downloads nothing).
Screenshots go to test-artifacts/ for people to look at."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypercorn.asyncio import serve
from hypercorn.config import Config
from playwright.async_api import Browser, ConsoleMessage, Page, Response, async_playwright
from temporalio.testing import WorkflowEnvironment

from adapters.rules_source import RulesSource
from config.settings import Settings
from tests.conftest import free_port
from tests.workflows.conftest import Harness, running_harness, scratch_databases
from web import create_app

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-quic",
    "--no-first-run",
]


@dataclass
class LiveApp:
    url: str
    settings: Settings
    harness: Harness


@pytest.fixture
async def live_app(
    settings: Settings,
    temporal_env: WorkflowEnvironment,
    temporal_ui_url: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[LiveApp]:
    """The app on its own databases (so only this test's claimants are in the queues),
    with an outreach worker and calling windows open all day."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    async with (
        scratch_databases("browser") as (dialler, replica),
        running_harness(temporal_env, settings, dialler, replica) as harness,
    ):
        app_settings = settings.model_copy(
            update={
                "database_url": dialler.url.render_as_string(hide_password=False),
                "replica_database_url": replica.url.render_as_string(hide_password=False),
                "temporal_address": temporal_env.client.service_client.config.target_host,
                "temporal_task_queue": harness.task_queue,
                "public_base_url": base,
                "web_port": port,
                "wrap_up_seconds": 3,
                "recordings_dir": tmp_path_factory.mktemp("recordings"),
                "temporal_ui_url": temporal_ui_url,
            }
        )
        app = create_app(app_settings)
        # the app reads the rules as the worker does: the newest version saved in the scratch
        # database, else the harness's (calling windows open all day)
        deps = app.extensions["dialler"]
        deps.use_rules_source(RulesSource(deps.dialler_db, harness.rules))
        config = Config()
        config.bind = [f"127.0.0.1:{port}"]
        config.accesslog = None
        stop = asyncio.Event()
        server = asyncio.create_task(serve(app, config, shutdown_trigger=stop.wait))
        await _until_listening(port)
        try:
            yield LiveApp(base, app_settings, harness)
        finally:
            stop.set()
            await server


async def _until_listening(port: int) -> None:
    for _ in range(100):
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.close()
            return
        except OSError:
            await asyncio.sleep(0.05)
    raise RuntimeError("the app did not start listening")


@pytest.fixture(scope="session")
async def browser() -> AsyncIterator[Browser]:
    if not os.path.exists(CHROMIUM):  # noqa: ASYNC240 - once per session, before any I/O
        pytest.fail(f"{CHROMIUM} is missing: apt-get install chromium (.ci/run does)")
    async with async_playwright() as playwright:
        instance = await playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
        )
        yield instance
        await instance.close()


@pytest.fixture
async def page(browser: Browser) -> AsyncIterator[Page]:
    context = await browser.new_context(viewport={"width": 1366, "height": 900}, locale="en-GB")
    tab = await context.new_page()
    errors: list[str] = []

    def console(message: ConsoleMessage) -> None:
        # A page that breaks its own CSP (inline script, a CDN) logs "Refused to ...";
        # a document answered 4xx on purpose (a re-rendered form) is not an error.
        if message.type == "error" and not message.text.startswith("Failed to load resource"):
            errors.append(message.text)

    def response(answer: Response) -> None:
        if answer.status >= 400 and answer.request.resource_type != "document":
            errors.append(f"{answer.status} for {answer.url}")

    tab.on("console", console)
    tab.on("response", response)
    tab.on("pageerror", lambda error: errors.append(str(error)))
    yield tab
    await context.close()
    assert not errors, f"the page logged errors: {errors}"


async def screenshot(page: Page, name: str) -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    await page.screenshot(path=str(path), full_page=True)
    return path
