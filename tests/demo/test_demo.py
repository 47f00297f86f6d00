"""The demo a newcomer starts with `script/develop`, headless, checked through HA and a browser."""

from __future__ import annotations

import contextlib
import importlib.util
import shutil
import time
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from playwright.sync_api import TimeoutError as PlaywrightTimeoutError
from playwright.sync_api import sync_playwright

from ..servers import free_port

ROOT = Path(__file__).parents[2]
CHROMIUM_ARGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]  # fmt: skip


def _demo_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("edgeiot_demo", ROOT / "script" / "demo.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _wait(predicate: Any, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if result := predicate():
            return result
        time.sleep(0.5)
    raise TimeoutError(what)


@pytest.mark.timeout(900)
def test_demo_runs_and_renders(tmp_path: Path, socket_enabled: None) -> None:
    """Entities appear and change in HA; the EdgeIoT dashboard renders them after a real login."""
    chromium = shutil.which("chromium")
    assert chromium is not None, "script/setup installs Debian's chromium"
    demo_module = _demo_module()
    demo = demo_module.Demo(2, state=tmp_path / "state", ha_config=tmp_path / "ha",
                            ha_port=free_port(), interval=1.0)  # fmt: skip
    try:
        demo.start()
        token = demo.ha_token()

        def temperature() -> float | None:
            states = {s["entity_id"]: s["state"] for s in demo.request("/api/states", token=token)}
            value = states.get("sensor.greenhouse_1_climate_temperature")
            try:
                return float(value) if value is not None else None
            except ValueError:
                return None

        first = _wait(temperature, 120, "the demo's temperature entity")
        _wait(lambda: temperature() not in (None, first), 60, "a changing temperature")
        states = {s["entity_id"] for s in demo.request("/api/states", token=token)}
        assert {"switch.greenhouse_2_vent_open", "select.greenhouse_1_vent_mode",
                "sensor.edgeiot_gateway_demo_recorder_points_written"} <= states  # fmt: skip

        screenshot = tmp_path / "demo-dashboard.png"
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.goto(f"{demo.ha_url}/edgeiot-demo/nodes")
            page.locator("input[name=username]").fill(demo_module.DEMO_USER)
            page.locator("input[type=password]").fill(demo_module.DEMO_PASSWORD)
            page.keyboard.press("Enter")
            page.wait_for_url("**/edgeiot-demo/nodes", timeout=60_000)
            # HA asks to confirm a non-default http port once; the demo's own port is the default.
            confirm = page.get_by_role("button", name="Confirm")
            with contextlib.suppress(PlaywrightTimeoutError):
                confirm.click(timeout=10_000)
            page.get_by_text("Greenhouse 1", exact=True).wait_for(timeout=60_000)
            assert page.get_by_text("Greenhouse 2", exact=True).count() >= 1
            assert page.get_by_text("Temperature", exact=True).count() >= 2
            assert page.get_by_text("Vent mode", exact=True).count() >= 2
            assert page.get_by_text("Entity not found").count() == 0
            page.wait_for_timeout(2_000)  # let the history graph draw
            page.screenshot(path=str(screenshot), full_page=True)
            browser.close()
        assert screenshot.stat().st_size > 10_000
        print(f"demo dashboard screenshot: {screenshot}")
    finally:
        demo.stop()
