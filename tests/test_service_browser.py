"""The service's pages in a real browser (Selenium, Debian's headless Chromium), on the real
exercise: a student logs in, drops the reference zip on the page, watches it go from the queue
to 100/100 without a reload and sees the part table and the history with the counted upload
marked; a second student sees none of it (and the first one's id answers 404 in their session);
the instructor's page shows the counted upload and the grade table as CSV.

Screenshots go to ``$BROWSER_SCREENSHOTS`` (or the test's temporary folder)."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from service_support import ASSIGNMENT, SERVICE_ENV, client
from test_browser import CHROMEDRIVER, CHROMIUM

from autograder import release
from autograder.demo import reference_zip
from autograder.store import Store
from autograder.store.accounts import Accounts

REAL_ROOT = Path(__file__).resolve().parents[1]
SHARED_CACHE = REAL_ROOT / "course" / "demo" / "cache"

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not (CHROMIUM.exists() and CHROMEDRIVER.exists()),
        reason="needs Debian's chromium and chromium-driver (.ci/run installs them)",
    ),
]


@pytest.fixture(scope="module")
def real_course(tmp_path_factory, prepared_data_dir):
    root = tmp_path_factory.mktemp("service-browser")
    course_dir = root / "course"
    release.release(course_dir, [ASSIGNMENT], dist_dir=root / "dist")
    accounts = Accounts(Store.for_course(course_dir))
    tokens = {name: accounts.issue(ASSIGNMENT, name, "student") for name in ("s1", "s2")}
    tokens["prof"] = accounts.issue(ASSIGNMENT, "prof", "instructor")
    zip_path = reference_zip(SHARED_CACHE, prepared_data_dir)
    return course_dir, tokens, zip_path, root


@pytest.fixture(scope="module")
def server(real_course, prepared_data_dir):
    from servers import uvicorn_server

    course_dir, _, _, root = real_course
    env = {**os.environ, **SERVICE_ENV, "AUTOGRADER_DATA_DIR": str(prepared_data_dir)}
    env.pop("AUTOGRADER_TIMEOUT_S")
    with uvicorn_server(course_dir, args=["--jobs", "1"], env=env, tmp_dir=root) as server:
        yield server


@pytest.fixture(scope="module")
def browser(real_course):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    root = real_course[3]
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for argument in (
        "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        "--no-first-run", "--window-size=1200,1100", f"--user-data-dir={root / 'chromium'}",
    ):  # fmt: skip
        options.add_argument(argument)
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    driver.set_page_load_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture(scope="module")
def shots(real_course) -> Path:
    folder = Path(os.environ.get("BROWSER_SCREENSHOTS") or real_course[3] / "screenshots")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _wait(what: str, condition, timeout: float):
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out after {timeout:.0f} s waiting for {what}"
        time.sleep(0.3)


def _login(driver, url: str, token: str) -> None:
    from selenium.webdriver.common.by import By

    driver.delete_all_cookies()
    driver.get(f"{url}/login")
    driver.find_element(By.ID, "token").send_keys(token)
    driver.find_element(By.ID, "login").click()
    _wait("the page after login", lambda: driver.current_url.rstrip("/") == url, 30)


def _text(driver, element_id: str) -> str:
    return driver.execute_script(
        f"const e = document.getElementById('{element_id}'); return e ? e.innerText : '';"
    )


DROP = """
const input = document.createElement('input');
input.type = 'file'; input.id = 'test-drop-source';
document.body.append(input);
"""
DISPATCH = """
const file = document.getElementById('test-drop-source').files[0];
const data = new DataTransfer(); data.items.add(file);
const target = document.getElementById('drop');
for (const type of ['dragenter', 'dragover', 'drop']) {
  target.dispatchEvent(new DragEvent(type, {dataTransfer: data, bubbles: true, cancelable: true}));
}
"""


def test_a_student_drops_the_reference_zip_and_watches_it_turn_100_of_100(
    server, real_course, browser, shots
):
    from selenium.webdriver.common.by import By

    _, tokens, zip_path, _ = real_course
    _login(browser, server.url, tokens["s1"])
    assert "Hand in exercise_08" in browser.page_source
    assert _text(browser, "no-uploads") == "No uploads yet."
    browser.save_screenshot(str(shots / "service-1-student-empty.png"))
    browser.execute_script(DROP)
    browser.find_element(By.ID, "test-drop-source").send_keys(str(zip_path))
    browser.execute_script(DISPATCH)
    status = _wait(
        "the upload's status",
        lambda: (
            _text(browser, "current-status")
            if any(w in _text(browser, "current-status") for w in ("Queued", "Being graded"))
            else None
        ),
        60,
    )
    browser.save_screenshot(str(shots / "service-2-student-waiting.png"))
    url_before = browser.current_url
    _wait("Graded", lambda: _text(browser, "current-status").startswith("Graded"), 600)
    assert browser.current_url == url_before  # no reload: the page updated itself
    assert _text(browser, "current-score").startswith("100 / 100 points")
    rows = browser.find_elements(By.CSS_SELECTOR, "#parts tbody tr")
    assert len(rows) >= 5 and all("/" in r.find_elements(By.TAG_NAME, "td")[1].text for r in rows)
    history = browser.find_elements(By.CSS_SELECTOR, "#history tbody tr")
    assert len(history) == 1 and "counts" in history[0].text
    assert "this upload counts" in _text(browser, "current-status")
    browser.save_screenshot(str(shots / "service-3-student-graded.png"))
    print(f"status seen while waiting: {status!r}")
    feedback = browser.find_element(By.ID, "current-feedback")
    assert feedback.is_displayed()
    browser.get(feedback.get_attribute("href"))
    assert "Feedback" in browser.title and "Grader's verdict" in _text(browser, "feedback-page")
    browser.save_screenshot(str(shots / "service-3b-student-feedback.png"))


def test_a_second_student_sees_none_of_it(server, real_course, browser, shots):
    _, tokens, _, _ = real_course
    with client(server.url, tokens["s1"]) as http:
        (first,) = http.get("/api/submissions").json()
    _login(browser, server.url, tokens["s2"])
    _wait("the history", lambda: _text(browser, "no-uploads") == "No uploads yet.", 30)
    answer = browser.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        f"fetch('/api/submissions/{first['id']}').then(r => done(r.status));"
    )
    assert answer == 404
    assert first["id"] not in browser.page_source and "reference" not in browser.page_source
    browser.save_screenshot(str(shots / "service-4-second-student.png"))


def test_the_instructor_sees_the_counted_upload_and_the_grade_table(
    server, real_course, browser, shots
):
    from selenium.webdriver.common.by import By

    _, tokens, _, _ = real_course
    _login(browser, server.url, tokens["prof"])
    rows = browser.find_elements(By.CSS_SELECTOR, "#grades tbody tr")
    assert len(rows) == 1 and rows[0].text.startswith("s1 graded 100 / 100")
    assert browser.find_element(By.ID, "csv").get_attribute("href").endswith(".csv")
    assert "No worker." not in _text(browser, "workers")
    browser.save_screenshot(str(shots / "service-5-instructor.png"))
