"""The notebooks in a real browser: JupyterLab in headless Chromium, driven by Selenium.

One JupyterLab server and one browser serve every check (it is the slowest test of the suite):

- both SOURCE notebooks Run All (the Run menu) with no error output;
- every widget view renders: no "Error displaying widget", no widget shown as its text repr;
- moving a slider of each explorer (the latent-space explorer of exercise_08, the augmentation
  explorer of the optional exercise) redraws its picture;
- the untouched student release of exercise_08 stops at the first graded cell with its
  NotImplementedError message.

Needs Debian's ``chromium`` and ``chromium-driver`` (``.ci/run`` installs them); skipped without
them. Screenshots go to ``$BROWSER_SCREENSHOTS`` (or the test's temporary folder).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

CHROMIUM, CHROMEDRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")
TOKEN = "browser-test"
RUN_ALL_TIMEOUT_S = 900
WIDGET_REPR = re.compile(r"\b(VBox|HBox|IntSlider|FloatSlider|FloatProgress|Checkbox|Image)\(")

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not (CHROMIUM.exists() and CHROMEDRIVER.exists()),
        reason="needs Debian's chromium and chromium-driver (.ci/run installs them)",
    ),
]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def lab_settings(folder: Path) -> Path:
    """JupyterLab settings for a test: every cell in the DOM (no windowing), no news pop-ups."""
    settings = {
        "@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {"windowingMode": "none"},
        "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {
            "fetchNews": "false",
            "checkForUpdates": False,
        },
    }
    for name, values in settings.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(values))
    return folder


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory, prepared_data_dir: Path) -> Path:
    """The folder JupyterLab serves: both source exercises, the student release of exercise_08,
    and a data folder with the training files only (the notebooks prepare the rest)."""
    from autograder.release import release

    root = tmp_path_factory.mktemp("browser")
    raw = root / "data" / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for name in ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"):
        shutil.copyfile(prepared_data_dir / "MNIST" / "raw" / name, raw / name)
    ignore = shutil.ignore_patterns("models", "*.zip", "__pycache__", ".ipynb_*", "grading")
    for exercise in ("exercise_08", "exercise_08_optional"):
        shutil.copytree(ROOT / exercise, root / "source" / exercise, ignore=ignore)
    built = root / "built"
    release(built, ["exercise_08"], dist_dir=root / "dist")
    shutil.copytree(built / "release" / "exercise_08", root / "student" / "exercise_08")
    return root


@pytest.fixture(scope="module")
def lab(workspace: Path) -> Iterator[str]:
    """A JupyterLab server on ``workspace``; yields its base URL."""
    port = free_port()
    state = workspace / "jupyter"
    env = {
        **os.environ,
        "COURSE_DATA_DIR": str(workspace / "data"),
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "JUPYTER_CONFIG_DIR": str(state / "config"),
        "JUPYTER_RUNTIME_DIR": str(state / "runtime"),
        "JUPYTERLAB_SETTINGS_DIR": str(lab_settings(state / "settings")),
        "JUPYTERLAB_WORKSPACES_DIR": str(state / "workspaces"),
        "IPYTHONDIR": str(state / "ipython"),
    }
    env.pop("NBGRADER_EXECUTION", None)
    server = subprocess.Popen(
        [
            sys.executable, "-m", "jupyter", "lab", "--no-browser", "--allow-root",
            "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={port}",
            f"--IdentityProvider.token={TOKEN}", f"--ServerApp.root_dir={workspace}",
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=open(state.parent / "jupyter.log", "w"),  # noqa: SIM115 (closed with the server)
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                urllib.request.urlopen(f"{url}/api/status?token={TOKEN}", timeout=5)
                break
            except OSError:
                assert server.poll() is None, (state.parent / "jupyter.log").read_text()[-2000:]
                assert time.monotonic() < deadline, "JupyterLab did not start in 2 minutes"
                time.sleep(1)
        yield url
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()


@pytest.fixture(scope="module")
def browser(workspace: Path):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for argument in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--window-size=1400,1000",
        f"--user-data-dir={workspace / 'chromium-profile'}",
    ):
        options.add_argument(argument)
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    driver.set_page_load_timeout(120)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture(scope="module")
def screenshots(workspace: Path) -> Path:
    folder = Path(os.environ.get("BROWSER_SCREENSHOTS") or workspace / "screenshots")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


# --- Driving JupyterLab ---------------------------------------------------------------------

PANEL = "document.querySelector('.jp-NotebookPanel:not(.lm-mod-hidden)')"
"""The notebook on screen (each notebook opens in a workspace of its own, but to be sure)."""
NOTEBOOK_STATE = (
    f"const panel = {PANEL};"
    + """
const cells = [...panel.querySelectorAll('.jp-Notebook .jp-Cell')];
return cells.map(cell => ({
  code: cell.classList.contains('jp-CodeCell'),
  source: (cell.querySelector('.jp-InputArea-editor') || {}).textContent || '',
  prompt: (cell.querySelector('.jp-InputPrompt') || {}).textContent || '',
  output: [...cell.querySelectorAll('.jp-OutputArea-output')].map(o => o.innerText).join('\\n'),
  errors: [...cell.querySelectorAll('.jp-OutputArea-output[data-mime-type=' +
           '"application/vnd.jupyter.stderr"]')].map(o => o.innerText).join('\\n'),
  widgets: cell.querySelectorAll('.jp-OutputArea-output .jupyter-widgets').length,
}));
"""
)


def wait_for(what: str, condition: Callable[[], object], timeout: float, every: float = 1.0):
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        assert time.monotonic() < deadline, f"timed out after {timeout:.0f} s waiting for {what}"
        time.sleep(every)


def kernel_idle(driver) -> bool:
    return driver.execute_script(
        f"const panel = {PANEL}; return !!panel && !!panel.querySelector('.jp-Cell') && "
        "!!panel.querySelector('.jp-Notebook-ExecutionIndicator[data-status=\"idle\"]')"
    )


def open_notebook(driver, url: str, workspace: str, path: str) -> None:
    """Open ``path`` alone in a fresh JupyterLab workspace; wait for its idle kernel."""
    driver.get(f"{url}/lab/workspaces/{workspace}/tree/{path}?reset&token={TOKEN}")
    wait_for(f"{path} to open with an idle kernel", lambda: kernel_idle(driver), 180)


def click_menu(driver, menu: str, item: str) -> None:
    from selenium.webdriver.common.by import By

    driver.find_element(
        By.XPATH, f"//div[contains(@class, 'lm-MenuBar-itemLabel') and text()='{menu}']"
    ).click()
    wait_for(
        f"the {item!r} menu item",
        lambda: driver.find_elements(
            By.XPATH, f"//div[contains(@class, 'lm-Menu-itemLabel') and text()='{item}']"
        ),
        10,
        0.2,
    )[0].click()


def run_all(driver) -> list[dict]:
    """Run > Run All Cells; wait until no cell is queued or running; return the cells' state.

    If the run shows no sign of starting (a queued cell, a changed prompt) within 30 s, the
    menu is used once more: a click can get lost while JupyterLab is still busy laying out.
    """

    def prompts() -> list[str]:
        return [c["prompt"] for c in driver.execute_script(NOTEBOOK_STATE)]

    before = prompts()
    for attempt in range(2):
        click_menu(driver, "Run", "Run All Cells")
        try:
            wait_for(
                "the run to start",
                lambda: (now := prompts()) != before or any("*" in p for p in now),
                30,
                0.2,
            )
            break
        except AssertionError:
            if attempt:
                raise
    return wait_for(
        "Run All to finish",
        lambda: (
            (cells := driver.execute_script(NOTEBOOK_STATE))
            and not any("*" in c["prompt"] for c in cells)
            and kernel_idle(driver)
            and cells
        ),
        RUN_ALL_TIMEOUT_S,
        2.0,
    )


def assert_ran_cleanly(cells: list[dict]) -> None:
    code = [c for c in cells if c["code"]]
    not_run = [c["source"][:80] for c in code if not re.search(r"\[\d+\]", c["prompt"])]
    assert not_run == []
    for cell in code:
        assert "Traceback" not in cell["errors"] + cell["output"], cell["source"][:200]
        assert "Error displaying widget" not in cell["output"], cell["source"][:200]
        assert not WIDGET_REPR.search(cell["output"]), (cell["source"][:200], cell["output"])


def picture_of(driver, explorer, selector: str) -> str:
    """The ``src`` of the explorer's picture, once it is a loaded image."""
    return wait_for(
        "the explorer's picture",
        lambda: driver.execute_script(
            "const img = arguments[0].querySelector(arguments[1]);"
            "return img && img.complete && img.naturalWidth > 0 ? img.src : null;",
            explorer,
            selector,
        ),
        30,
        0.5,
    )


def move_slider(driver, explorer, index: int) -> None:
    """Focus a slider's handle and press the right arrow key, as a user would."""
    from selenium.webdriver.common.keys import Keys

    handle = explorer.find_elements("css selector", ".widget-slider .noUi-handle")[index]
    driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", handle)
    handle.click()
    handle.send_keys(Keys.ARROW_RIGHT)


def explorer_redraws(driver, screenshots: Path, name: str, code: str, picture: str, slider: int):
    """Find the widget output of the cell whose source contains ``code``, move one of its
    sliders and wait until its picture changes; screenshots before and after."""
    from selenium.webdriver.common.by import By

    panel = driver.execute_script(f"return {PANEL}")
    cell = next(
        c
        for c in panel.find_elements(By.CSS_SELECTOR, ".jp-Notebook .jp-CodeCell")
        if code in c.find_element(By.CSS_SELECTOR, ".jp-InputArea-editor").text
    )
    explorer = cell.find_element(By.CSS_SELECTOR, ".jp-OutputArea .widget-vbox")
    driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", explorer)
    before = picture_of(driver, explorer, picture)
    explorer.screenshot(str(screenshots / f"{name}_explorer_before.png"))
    move_slider(driver, explorer, slider)
    wait_for(
        f"the {name} explorer to redraw",
        lambda: picture_of(driver, explorer, picture) != before,
        60,
    )
    explorer.screenshot(str(screenshots / f"{name}_explorer_after.png"))


# --- The checks -----------------------------------------------------------------------------


@pytest.fixture
def shows(browser, screenshots: Path, request: pytest.FixtureRequest) -> Iterator[None]:
    """Keep a screenshot of the page when a browser test fails."""
    failed_before = request.session.testsfailed
    yield
    if request.session.testsfailed > failed_before:
        browser.save_screenshot(str(screenshots / f"failed_{request.node.name}.png"))


def test_exercise_08_runs_all_and_its_explorer_redraws(lab: str, browser, screenshots, shows):
    open_notebook(browser, lab, "exercise08", "source/exercise_08/autoencoder.ipynb")
    cells = run_all(browser)
    browser.save_screenshot(str(screenshots / "exercise_08_after_run_all.png"))
    assert_ran_cleanly(cells)
    assert sum(c["widgets"] for c in cells) >= 5, "progress bars and the explorer render"
    assert "Final model: public test accuracy" in "".join(c["output"] for c in cells)
    explorer_redraws(browser, screenshots, "latent", "plots.latent_explorer(", "img", slider=2)


def test_the_optional_exercise_runs_all_and_its_explorer_redraws(
    lab: str, browser, screenshots, shows
):
    open_notebook(browser, lab, "optional", "source/exercise_08_optional/regularization.ipynb")
    cells = run_all(browser)
    browser.save_screenshot(str(screenshots / "optional_after_run_all.png"))
    assert_ran_cleanly(cells)
    assert sum(c["widgets"] for c in cells) >= 1
    explorer_redraws(browser, screenshots, "augmentation", "augmentation_explorer(", "img", 0)


def test_the_student_release_stops_at_the_first_graded_cell(lab: str, browser, screenshots, shows):
    open_notebook(browser, lab, "student", "student/exercise_08/autoencoder.ipynb")
    cells = run_all(browser)
    code = [c for c in cells if c["code"]]
    failed = [i for i, c in enumerate(code) if "Traceback" in c["errors"] + c["output"]]
    assert failed, "the student version must stop at its first stub"
    first = code[failed[0]]
    assert first["source"].startswith("# Test (6 points): Encoder."), first["source"][:100]
    assert "NotImplementedError: Implement Encoder.__init__ in exercise_code/networks.py" in (
        first["errors"] + first["output"]
    )
    assert all(re.search(r"\[\d+\]", c["prompt"]) for c in code[: failed[0]])
    assert not any(re.search(r"\[\d+\]", c["prompt"]) for c in code[failed[0] + 1 :])
    error = browser.execute_script(
        f"return {PANEL}.querySelector('.jp-OutputArea-output[data-mime-type="
        '"application/vnd.jupyter.stderr"]\')'
    )
    browser.execute_script("arguments[0].scrollIntoView({block: 'center'})", error)
    browser.save_screenshot(str(screenshots / "student_stops_at_first_stub.png"))
