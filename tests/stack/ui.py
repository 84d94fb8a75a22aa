"""Drive the Airflow UI in Debian's headless Chromium (Playwright, never a downloaded browser)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pathlib import Path

    from mlops_airflow.localstack import AirflowStack

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
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
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
