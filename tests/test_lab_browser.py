"""The lesson lab used as a person would, in headless Chromium (Debian's chromium and
chromium-driver, driven by selenium; no browser is downloaded).

Open home; move an explorer control and see the chart's numbers become what the CLI command
shown under it prints; answer an exercise wrong, then right, and read the diagnosis; reload
and keep the progress. Screenshots of every page (1280x800 and a phone's 390x844) go to
``$LAB_SCREENSHOTS`` (default ``build/lab-screenshots``). Without Chromium these tests skip
on a developer's machine and FAIL under CI=true, where .ci/run installs it.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

pytestmark = [pytest.mark.browser, pytest.mark.slow]

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
DRIVER = shutil.which("chromedriver")
SHOTS = Path(os.environ.get("LAB_SCREENSHOTS", "build/lab-screenshots"))
PAGES = ("/", "/explore/attention", "/explore/kv", "/explore/moe", "/explore/parallel",
         "/explore/serving", "/exercises")


def _need_browser():
    missing = [name for name, path in (("chromium", CHROMIUM), ("chromedriver", DRIVER))
               if not path]
    try:
        import selenium  # noqa: F401
    except ImportError:
        missing.append("selenium (pip)")
    if missing:
        msg = (f"lab browser tests need {', '.join(missing)}: apt-get install chromium "
               "chromium-driver (done by .ci/run)")
        if os.environ.get("CI"):
            pytest.fail(msg)
        pytest.skip(msg)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server():
    _need_browser()
    import uvicorn

    from sim.cli.lab.app import create_app

    port = _free_port()
    srv = uvicorn.Server(uvicorn.Config(create_app(), host="127.0.0.1", port=port,
                                        log_level="warning"))
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not srv.started and time.monotonic() < deadline:
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    srv.should_exit = True
    thread.join(timeout=10)


@pytest.fixture(scope="module")
def browser(server):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                "--window-size=1280,800", "--force-device-scale-factor=1"):
        opts.add_argument(arg)
    driver = webdriver.Chrome(service=Service(DRIVER), options=opts)
    driver.set_window_size(1280, 800)
    yield driver
    driver.quit()


def wait(driver, condition, timeout=60.0, what="condition"):
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout, poll_frequency=0.1).until(
        lambda d: condition(d), message=f"timed out waiting for {what}")


def text(driver, selector: str) -> str:
    """An element's text read in the page (no stale handle when the page re-renders it)."""
    return driver.execute_script(
        "const e = document.querySelector(arguments[0]); return e ? e.innerText : '';", selector)


def updates(driver) -> int:
    return int(driver.execute_script(
        "return Number(document.getElementById('controls').dataset.updated || 0)"))


def chart(driver, div: str) -> dict[str, list]:
    return driver.execute_script(
        "const d = document.getElementById(arguments[0]).data || [];"
        "return Object.fromEntries(d.map(t => [t.name, t.y]));", div)


def run_shown_command(driver) -> dict:
    """Run the command printed under the chart, exactly as shown, and parse its JSON."""
    shown = driver.find_element("id", "command").text
    argv = shlex.split(shown)
    assert argv[0] == "clustersim"
    out = subprocess.run([sys.executable, "-m", "sim.cli.main", *argv[1:]], check=True,
                         capture_output=True, text=True, timeout=120)
    return json.loads(out.stdout)


def shoot(driver, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    driver.save_screenshot(str(SHOTS / f"{name}.png"))


def test_home_shows_three_parts_and_five_misconceptions_with_links(browser, server):
    browser.get(server + "/")
    lessons = browser.find_elements("css selector", ".card h3")
    assert [e.text for e in lessons] == ["Lesson 1 - Mixture of Experts",
                                         "Lesson 2 - Long context and efficient attention",
                                         "Lesson 3 - Training and serving at scale"]
    miscs = browser.find_elements("css selector", ".miscs > li")
    assert len(miscs) == 5
    assert all(m.find_elements("css selector", "a") for m in miscs)
    browser.find_element("link text", "Attention cost vs context").click()
    wait(browser, lambda d: "/explore/attention" in d.current_url, what="the explorer page")


def test_moving_the_window_slider_redraws_the_chart_with_the_cli_numbers(browser, server):
    from selenium.webdriver.common.keys import Keys

    browser.get(server + "/explore/attention")
    wait(browser, lambda d: updates(d) >= 1, what="the first chart")
    before = chart(browser, "chart-flops")
    assert "sliding window 4096" in before
    slider = browser.find_element("name", "window")
    slider.send_keys(Keys.ARROW_LEFT)  # keyboard: 4096 -> 2048 tokens
    wait(browser, lambda d: "sliding window 2048" in chart(d, "chart-flops"), what="redraw")
    after = chart(browser, "chart-flops")
    assert "--window=2048" in browser.find_element("id", "command").text
    cli = run_shown_command(browser)
    want = [p["attention_forward_flop"] / 1e12 for p in cli["series"]["sliding window 2048"]]
    assert after["sliding window 2048"] == pytest.approx(want, rel=1e-12)
    assert after["sliding window 2048"] != before["sliding window 4096"]
    assert after["full"] == pytest.approx(
        [p["attention_forward_flop"] / 1e12 for p in cli["series"]["full"]], rel=1e-12)


def test_the_parallelism_planner_draws_memory_and_step_time_from_clustersim_train(browser,
                                                                                   server):
    browser.get(server + "/explore/parallel")
    wait(browser, lambda d: updates(d) >= 1, what="the planner")
    cli = run_shown_command(browser)
    mem = chart(browser, "chart-memory")
    assert mem["weights"][0] == pytest.approx(cli["memory_breakdown_bytes"]["weights"] / 2**30)
    t = chart(browser, "chart-time")
    assert t["compute"][0] == pytest.approx(cli["time_breakdown_s"]["compute"] * 1e3)


def _answer(browser, value: str) -> str:
    box = browser.find_element("id", "answer")
    box.clear()
    box.send_keys(value + "\n")
    wait(browser, lambda d: value in text(d, "#verdict-text"), what="a verdict")
    return text(browser, "#verdict-text")


def test_an_exercise_answered_wrong_then_right_keeps_its_progress_after_reload(browser,
                                                                               server):
    browser.get(server + "/exercises")
    browser.execute_script("localStorage.clear()")
    browser.get(server + "/exercises")
    seed = browser.find_element("id", "seed")
    seed.clear()
    seed.send_keys("7\t")
    wait(browser, lambda d: "seed 7" in text(d, ".meta"), what="seed 7")
    first = text(browser, "#exercise h2")
    from sim.cli.lab.bridge import run_argv

    right = run_argv(["exercise", "check", first, "--seed=7", "--answer=1"])
    wrong = run_argv(["exercise", "check", first, "--seed=7", f"--answer={5 * right['expected']}"])
    assert "Not quite" in _answer(browser, repr(5 * right["expected"]))
    diagnosis = text(browser, "#diagnosis")
    assert wrong["signature"] in diagnosis and wrong["explanation"] in diagnosis
    shoot(browser, "exercise-wrong")
    full = browser.execute_script("return document.documentElement.scrollHeight")
    browser.set_window_size(1280, min(full + 140, 4000))
    time.sleep(0.5)
    shoot(browser, "full-exercise-wrong")
    browser.set_window_size(1280, 800)
    assert "Correct" in _answer(browser, repr(right["expected"]))
    wait(browser, lambda d: "Worked solution" in text(d, "#solution"), what="the solution")
    browser.refresh()
    wait(browser, lambda d: d.find_elements("css selector", f'[data-progress="{first}"]'),
         what="the list")
    assert "solved" in text(browser, f'[data-progress="{first}"]')
    assert browser.execute_script("return document.getElementById('seed').value") == "7"
    assert "1 of" in text(browser, "#progress-summary")


def test_hints_are_revealed_one_at_a_time(browser, server):
    browser.get(server + "/exercises")
    wait(browser, lambda d: d.find_elements("id", "hint-btn"), what="an exercise")
    btn = browser.find_element("id", "hint-btn")
    if not btn.is_displayed():
        pytest.skip("the first exercise has no hints")
    btn.click()  # the hint comes from /api/exercises/ID/hint: wait for it
    wait(browser, lambda d: d.find_elements("css selector", "#hints li"), what="a hint")
    assert len(browser.find_elements("css selector", "#hints li")) == 1


def test_a_des_run_shows_progress_and_can_be_cancelled(browser, server):
    browser.get(server + "/explore/parallel")
    from selenium.webdriver.common.keys import Keys

    wait(browser, lambda d: updates(d) >= 1, what="the planner")
    browser.find_element("name", "global_batch").send_keys(Keys.END)  # 2048: a long run
    wait(browser, lambda d: "--global-batch=2048" in d.find_element("id", "command").text,
         what="the planner at global batch 2048")
    browser.find_element("id", "run-des").click()
    wait(browser, lambda d: d.find_element("id", "cancel").is_displayed(), what="cancel button")
    browser.find_element("id", "cancel").click()
    wait(browser, lambda d: "cancelled" in d.find_element("id", "job-status").text,
         what="cancelled")


def test_every_page_is_screenshotted_at_desktop_and_phone_width(browser, server):
    for width, height, tag in ((1280, 800, "desktop"), (390, 844, "phone")):
        browser.set_window_size(width, height)
        for path in PAGES:
            browser.get(server + path)
            if path.startswith("/explore/") and path != "/explore/serving":
                wait(browser, lambda d: updates(d) >= 1, what=f"{path} chart")
            if path == "/explore/parallel":
                browser.find_element("id", "run-des").click()
                wait(browser, lambda d: "done" in d.find_element("id", "job-status").text,
                     timeout=180, what="the DES run")
            if path == "/explore/serving":
                wait(browser, lambda d: "done" in d.find_element("id", "job-status").text,
                     timeout=180, what="the serving simulation")
            if path == "/exercises":
                wait(browser, lambda d: d.find_elements("css selector", "#exercise h2"),
                     what="an exercise")
            width_px = browser.execute_script("return document.documentElement.scrollWidth")
            assert width_px <= width + 1, f"{path} scrolls sideways at {width}px"
            name = "home" if path == "/" else path.strip("/").replace("/", "-")
            shoot(browser, f"{tag}-{name}")
            if tag == "desktop":  # the whole page at the same width, for docs/lab/
                full = browser.execute_script("return document.documentElement.scrollHeight")
                browser.set_window_size(width, min(full + 140, 4000))
                time.sleep(0.5)  # charts re-layout to the new size
                shoot(browser, f"full-{name}")
                browser.set_window_size(width, height)
    browser.set_window_size(1280, 800)
    assert len(list(SHOTS.glob("desktop-*.png"))) == len(PAGES)
