"""Drive the Airflow UI in Debian's headless Chromium (Playwright, never a downloaded browser)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pathlib import Path

    from mlops_dev.localstack import AirflowStack

# The flags this machine needs: no sandbox as root, and no background calls to the outside.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def trigger_form_screenshot(stack: AirflowStack, chromium: str, dag_id: str, out: Path) -> dict[str, Any]:
    """Log in, find the DAG by its tag, read its docs, open the Trigger form; save screenshots."""
    from playwright.sync_api import sync_playwright

    password = json.loads((stack.home / "passwords.json").read_text())["admin"]
    seen: dict[str, Any] = {}
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        page = open_page(browser, 1400, 1000)
        page.goto(f"{stack.url}/", wait_until="networkidle")
        page.locator("input[name=username]").fill("admin")
        page.locator("input[name=password]").fill(password)
        page.locator("button[type=submit]").click()
        page.wait_for_url(lambda u: "/auth/login" not in u, wait_until="networkidle")
        seen["login"] = "/auth/login" not in page.url

        page.goto(f"{stack.url}/dags?tags=training", wait_until="networkidle")
        page.get_by_text(dag_id, exact=True).first.wait_for(timeout=30_000)
        seen["dag_list_has_tag"] = dag_id in page.inner_text("body")
        page.screenshot(path=str(out / "dag_list.png"))

        page.goto(f"{stack.url}/dags/{dag_id}", wait_until="networkidle")
        page.get_by_label("Trigger Dag").first.wait_for(timeout=30_000)
        page.get_by_label("Dag Docs").first.click()
        page.get_by_text("paired-bootstrap").first.wait_for(timeout=30_000)
        seen["docs"] = True
        page.screenshot(path=str(out / "dag_docs.png"))
        page.keyboard.press("Escape")

        page.get_by_label("Trigger Dag").first.click()
        dialog = page.get_by_role("dialog")
        dialog.get_by_text("Run Parameters").first.wait_for(timeout=30_000)
        seen["form_text"] = dialog.inner_text()
        seen["trigger_enabled"] = dialog.get_by_role("button", name="Trigger").last.is_enabled()
        dialog.screenshot(path=str(out / "trigger_form.png"))
        browser.close()
    return seen


def open_page(browser: Any, width: int, height: int) -> Any:
    """A page whose waits fit a loaded machine: CI runs the demo, the benchmarks and the server
    tiers side by side, and a view then takes well over Playwright's 30 s default to settle."""
    page = browser.new_page(viewport={"width": width, "height": height})
    page.set_default_navigation_timeout(120_000)
    page.set_default_timeout(60_000)
    return page


def login(page: Any, url: str, password: str) -> None:
    """Sign in as ``admin`` on Airflow's login page at ``url`` and wait until it lets us in."""
    page.goto(f"{url}/", wait_until="networkidle")
    page.locator("input[name=username]").fill("admin")
    page.locator("input[name=password]").fill(password)
    page.locator("button[type=submit]").click()
    page.wait_for_url(lambda u: "/auth/login" not in u, wait_until="networkidle")


def _login(page: Any, stack: AirflowStack) -> None:
    login(page, stack.url, json.loads((stack.home / "passwords.json").read_text())["admin"])


def approve_in_the_required_actions_page(
    stack: AirflowStack, chromium: str, dag_id: str, run_id: str, out: Path
) -> dict[str, Any]:
    """Open the approval task's Required Actions page, read the evidence, save it, press Approve."""
    from urllib.parse import quote

    from playwright.sync_api import sync_playwright

    seen: dict[str, Any] = {}
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        page = open_page(browser, 1400, 1400)
        _login(page, stack)
        url = f"{stack.url}/dags/{dag_id}/runs/{quote(run_id, safe='')}/tasks/approval/required_actions"
        page.goto(url, wait_until="networkidle")
        page.get_by_text("Holdout metrics").first.wait_for(timeout=60_000)
        seen["text"] = page.inner_text("body")
        page.screenshot(path=str(out / "approval_page.png"), full_page=True)
        button = page.get_by_role("button", name="Approve").first
        seen["approve_enabled"] = button.is_enabled()  # the comment is optional: enabled at once
        page.get_by_role("textbox").last.fill("approved in the browser")
        # the answer is the Required Actions page's PATCH of the task's HITL details: wait for its reply
        with page.expect_response(
            lambda r: r.request.method == "PATCH" and "hitlDetails" in r.url, timeout=60_000
        ) as answered:
            button.click()
        seen["answer_status"] = answered.value.status
        page.screenshot(path=str(out / "approval_answered.png"), full_page=True)
        browser.close()
    return seen


def models_view_screenshot(stack: AirflowStack, chromium: str, out: Path) -> dict[str, Any]:
    """Sign in, open "Models" from the Browse menu (the plugin's page inside Airflow's UI); save it."""
    from playwright.sync_api import sync_playwright

    seen: dict[str, Any] = {}
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        page = open_page(browser, 1500, 1200)
        _login(page, stack)
        page.goto(f"{stack.url}/plugin/mlops-models", wait_until="networkidle")
        frame = page.frame_locator("iframe").first
        frame.locator("h1").first.wait_for(timeout=60_000)
        seen["text"] = frame.locator("body").inner_text()
        # Airflow's own navigation renders after the network is idle on a loaded machine: wait for it
        page.wait_for_function("document.body.innerText.includes('Browse')", timeout=60_000)
        seen["nav"] = page.inner_text("body")[:4000]
        page.screenshot(path=str(out / "models_view.png"), full_page=True)
        browser.close()
    return seen
