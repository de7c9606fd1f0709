"""Browser test: JupyterLab in headless Chromium runs notebook 4 and its album panel responds.

What a user does, done by a real browser: open `4_Album_Tagging.ipynb` in JupyterLab, Run > Run
All Cells, wait for the tagging panel, drag the confidence slider, pick another language in the
dropdown, and read the keywords under the thumbnails. The keywords shown must be exactly the ones
`helpers.widgets.AlbumTaggingPanel` computes in this process for the same settings (same trained
model, same album), fewer at a higher threshold and translated after the language change. A
screenshot of the panel is saved as `outputs/browser/album_panel.png` (and
`outputs/browser/failure.png` when the test fails).

The browser is Debian's `chromium` (`.ci/install-browser` installs it; `playwright install` cannot
download browsers on these machines) driven by Playwright. Without `/usr/bin/chromium` (or
`$CHROMIUM`) or the `playwright` package the test is skipped, so `make test` still passes on a
laptop without them.

Everything runs on copies in a temporary folder: the notebook (its parameters injected as
papermill does), the album being tagged, and JupyterLab's settings, workspaces and runtime files.
The project is made importable in the kernel through `PYTHONPATH`.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest

PROJECT_ROOT = Path(__file__).resolve().parent.parent
NOTEBOOK = PROJECT_ROOT / "4_Album_Tagging.ipynb"
SCREENSHOT_DIR = PROJECT_ROOT / "outputs" / "browser"
CHROMIUM = Path(os.environ.get("CHROMIUM", "/usr/bin/chromium"))
# Run as root in a container: no sandbox, no GPU, nothing that reaches the network on its own.
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--no-proxy-server",  # only 127.0.0.1 is visited: never through an $http_proxy
    "--disable-dev-shm-usage",  # containers often have a 64 MB /dev/shm: use /tmp instead
]
TOKEN = "browser-test-token"
SERVER_START_TIMEOUT_S = 90      # `jupyter lab` answering /api/status
KERNEL_START_TIMEOUT_S = 90      # notebook opened and its kernel idle
RUN_ALL_TIMEOUT_S = 150          # every cell of notebook 4 executed (TensorFlow, model, album)
UPDATE_TIMEOUT_S = 30            # the panel showing new keywords after a control moved
THUMBNAIL_KEYWORD_LINE = 1       # label text: picture name, keywords, caption (one per line)

sync_api = pytest.importorskip(
    "playwright.sync_api",
    reason="playwright not installed (pip install -r requirements.txt); browser test skipped")
if not CHROMIUM.is_file():
    pytest.skip(f"{CHROMIUM} not found (run .ci/install-browser, or set CHROMIUM=path to a "
                "Chromium binary); browser test skipped", allow_module_level=True)


# --------------------------------------------------------------------------------------------
# JupyterLab server
# --------------------------------------------------------------------------------------------

# User settings written into the test's own JUPYTERLAB_SETTINGS_DIR: start the kernel without the
# "Select Kernel" dialog, render every cell (no virtual scrolling hiding the panel) and never ask
# about news or updates (no toast over the page, no request to the internet).
LAB_SETTINGS = {
    "@jupyterlab/notebook-extension/tracker": {"autoStartDefaultKernel": True,
                                               "windowingMode": "none"},
    "@jupyterlab/apputils-extension/notification": {"fetchNews": "false",
                                                    "checkForUpdates": False},
}


@dataclass
class JupyterLab:
    """A running `jupyter lab` serving `root_dir` at `url` (token authentication)."""

    url: str
    root_dir: Path
    log_path: Path

    def notebook_url(self, name: str) -> str:
        return f"{self.url}/lab/tree/{name}?token={TOKEN}"

    def log_tail(self, lines: int = 30) -> str:
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def jupyter_lab(tmp_path_factory):
    """Starts `jupyter lab` (this interpreter's) on a free port with isolated config; stops it."""
    base = tmp_path_factory.mktemp("jupyterlab")
    root_dir = base / "notebooks"
    root_dir.mkdir()
    for name, values in LAB_SETTINGS.items():
        path = base / "settings" / f"{name}.jupyterlab-settings"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(values))
    env = dict(os.environ)
    env.update({
        "PYTHONPATH": os.pathsep.join(filter(None, [str(PROJECT_ROOT), env.get("PYTHONPATH")])),
        "JUPYTER_CONFIG_DIR": str(base / "config"),
        "JUPYTER_DATA_DIR": str(base / "data"),          # no user kernelspecs shadowing python3
        "JUPYTER_RUNTIME_DIR": str(base / "runtime"),
        "JUPYTERLAB_SETTINGS_DIR": str(base / "settings"),
        "JUPYTERLAB_WORKSPACES_DIR": str(base / "workspaces"),
        "IPYTHONDIR": str(base / "ipython"),
        "TF_CPP_MIN_LOG_LEVEL": env.get("TF_CPP_MIN_LOG_LEVEL", "2"),
    })
    port = free_port()
    log_path = base / "jupyterlab.log"
    command = [
        sys.executable, "-m", "jupyterlab", "--no-browser", "--allow-root",
        "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={port}", "--ServerApp.port_retries=0",
        f"--IdentityProvider.token={TOKEN}", f"--ServerApp.root_dir={root_dir}",
        "--ServerApp.terminals_enabled=False", "--LabApp.extension_manager=readonly",
        "--LabApp.news_url=", "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
    ]
    with open(log_path, "wb") as log:
        server = subprocess.Popen(command, env=env, cwd=root_dir, stdout=log,
                                  stderr=subprocess.STDOUT, start_new_session=True)
    lab = JupyterLab(url=f"http://127.0.0.1:{port}", root_dir=root_dir, log_path=log_path)
    no_proxy = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        deadline = time.monotonic() + SERVER_START_TIMEOUT_S
        while True:
            if server.poll() is not None:
                pytest.fail(f"jupyter lab exited with status {server.returncode}:\n"
                            f"{lab.log_tail()}")
            try:
                with no_proxy.open(f"{lab.url}/api/status?token={TOKEN}", timeout=2):
                    break
            except (urllib.error.URLError, OSError):
                if time.monotonic() > deadline:
                    pytest.fail(f"jupyter lab did not answer within {SERVER_START_TIMEOUT_S} s:\n"
                                f"{lab.log_tail()}")
                time.sleep(0.3)
        yield lab
    finally:
        stop_process_group(server)


def stop_process_group(process: subprocess.Popen, grace_s: float = 20) -> None:
    """SIGTERM to the server's process group (the server then shuts its kernels down, which run
    in sessions of their own), SIGKILL to what is left of the group after `grace_s` seconds."""
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(grace_s)
        except subprocess.TimeoutExpired:
            pass
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()


@pytest.fixture()
def page(tmp_path):
    """A page of a headless Chromium with a fresh profile in tmp_path."""
    with sync_api.sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(tmp_path / "chromium-profile"), executable_path=str(CHROMIUM), headless=True,
            args=CHROMIUM_ARGS, viewport={"width": 1400, "height": 1000})
        try:
            page = context.pages[0] if context.pages else context.new_page()
            page.set_default_timeout(30_000)
            yield page
        finally:
            context.close()


@contextlib.contextmanager
def screenshot_on_failure(page, path: Path = SCREENSHOT_DIR / "failure.png"):
    """Saves the browser window to `path` when the block raises (what the page showed then)."""
    try:
        yield
    except BaseException:
        path.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(Exception):  # never hide the real failure
            page.screenshot(path=str(path))
        raise


# --------------------------------------------------------------------------------------------
# Driving JupyterLab
# --------------------------------------------------------------------------------------------

def write_notebook_copy(source: Path, folder: Path, parameters: dict) -> str:
    """Copies a notebook into `folder` with `parameters` injected after its parameters cell
    (papermill's "injected-parameters" cell) and a python3 kernelspec; returns its file name."""
    import nbformat
    from papermill.iorw import load_notebook_node
    from papermill.parameterize import parameterize_notebook

    notebook = load_notebook_node(str(source))
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3 (ipykernel)",
                                       "language": "python"}
    notebook = parameterize_notebook(notebook, parameters)
    nbformat.write(notebook, folder / source.name)
    return source.name


def status_bar_text(page) -> str:
    return page.locator("#jp-main-statusbar").inner_text()


def open_notebook(page, lab: JupyterLab, name: str) -> None:
    """Opens the notebook and waits until its kernel is idle."""
    page.goto(lab.notebook_url(name))
    page.wait_for_selector(".jp-NotebookPanel .jp-Notebook .jp-Cell",
                           timeout=KERNEL_START_TIMEOUT_S * 1000)
    select_kernel = page.get_by_role("button", name="Select", exact=True)
    deadline = time.monotonic() + KERNEL_START_TIMEOUT_S
    while not re.search(r"\| Idle", status_bar_text(page)):
        if select_kernel.is_visible():      # should not appear (autoStartDefaultKernel), but if so
            select_kernel.click()
        if time.monotonic() > deadline:
            raise AssertionError(f"kernel not idle after {KERNEL_START_TIMEOUT_S} s; status bar: "
                                 f"{status_bar_text(page)!r}\n{lab.log_tail()}")
        time.sleep(0.25)


def code_cell_prompts(page) -> list[str]:
    """Execution prompts of the code cells ("[3]:", "[*]:", "[ ]:")."""
    return [text.strip() for text in
            page.locator(".jp-Notebook .jp-CodeCell .jp-InputPrompt").all_inner_texts()]


def run_all_cells(page, lab: JupyterLab, timeout_s: float = RUN_ALL_TIMEOUT_S) -> None:
    """Run > Run All Cells, then waits until every code cell has run.

    Raises:
        AssertionError: a cell raised (execution stopped; the error output is in the message) or
            the notebook did not finish within `timeout_s`.
    """
    page.get_by_role("menuitem", name="Run", exact=True).click()
    page.get_by_role("menuitem", name="Run All Cells", exact=True).click()
    started = time.monotonic()
    idle_since = seen_busy = None
    while True:
        prompts = code_cell_prompts(page)
        if prompts and all(re.fullmatch(r"\[\d+\]:", prompt) for prompt in prompts):
            return
        busy = any("*" in prompt for prompt in prompts) or "| Idle" not in status_bar_text(page)
        seen_busy = seen_busy or busy
        idle_since = None if busy else (idle_since or time.monotonic())
        elapsed = time.monotonic() - started
        if seen_busy and idle_since and time.monotonic() - idle_since > 5:
            # A cell raised and the kernel cancelled the cells queued after it.
            raise AssertionError(f"notebook stopped before its end (prompts {prompts}):\n"
                                 f"{error_outputs(page)}")
        if not seen_busy and elapsed > 60:
            raise AssertionError(f"Run All Cells did not start the notebook (prompts {prompts}, "
                                 f"status bar {status_bar_text(page)!r})")
        if elapsed > timeout_s:
            raise AssertionError(f"notebook still running after {timeout_s} s (prompts {prompts})"
                                 f":\n{error_outputs(page)}\n{lab.log_tail()}")
        time.sleep(0.5)


def error_outputs(page) -> str:
    texts = page.locator(".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']"
                         ).all_inner_texts()
    return "\n".join(texts)[-4000:] or "(no error output)"


class AlbumPanelView:
    """The tagging panel (helpers.widgets.AlbumTaggingPanel) as the browser shows it."""

    def __init__(self, page):
        self.page = page
        # The panel: the VBox whose direct child is the thumbnail grid.
        self.root = page.locator(".jp-OutputArea-output .widget-vbox:has(> .widget-gridbox)").first
        self.slider = self.root.locator(".widget-slider", has_text="Confidence")
        self.handle = self.slider.locator("[role=slider]")
        self.language = self.root.locator(".widget-dropdown", has_text="Language").locator("select")
        self.cells = self.root.locator(".widget-gridbox > .widget-vbox")  # thumbnail + label

    def wait_until_shown(self, timeout_s: float = 60) -> None:
        self.root.wait_for(state="visible", timeout=timeout_s * 1000)
        self.root.scroll_into_view_if_needed()

    def keywords(self) -> dict[str, list[str] | None]:
        """Picture name -> keywords under its thumbnail ([] for none above the threshold, None
        for a picture shown as skipped)."""
        # The label is the last HTML widget of a grid cell (an unreadable photo's placeholder
        # before it is HTML too).
        texts = self.cells.evaluate_all("""cells => cells.map(cell => {
            const html = cell.querySelectorAll('.widget-html-content');
            return html.length ? html[html.length - 1].innerText : ''; })""")
        shown = {}
        for text in texts:
            lines = text.replace("\u00a0", " ").split("\n")
            name = lines[0].strip()
            line = lines[THUMBNAIL_KEYWORD_LINE].strip() if len(lines) > 1 else ""
            if line.startswith("⚠") or not line:
                shown[name] = None
            elif line.startswith("(none"):
                shown[name] = []
            else:
                shown[name] = [word.strip() for word in line.split(",")]
        return shown

    def threshold(self) -> float:
        """The slider's value as its readout shows it (aria-valuenow is rounded to 0.1)."""
        return float(self.slider.locator(".widget-readout").inner_text())

    def drag_threshold_to(self, value: float) -> float:
        """Drags the slider handle to about `value`, then steps with the arrow keys until the
        slider reads `value` exactly (as a user fine-tunes); returns the value shown."""
        track = self.slider.locator(".noUi-target").bounding_box()
        handle = self.handle.bounding_box()
        low, high = (float(self.handle.get_attribute(f"aria-value{end}")) for end in ("min", "max"))
        self.page.mouse.move(handle["x"] + handle["width"] / 2, handle["y"] + handle["height"] / 2)
        self.page.mouse.down()
        self.page.mouse.move(track["x"] + track["width"] * (value - low) / (high - low),
                             handle["y"] + handle["height"] / 2, steps=8)
        self.page.mouse.up()
        self.handle.focus()
        for _ in range(200):
            current = self.threshold()
            if abs(current - value) < 1e-6:
                break
            self.page.keyboard.press("ArrowRight" if current < value else "ArrowLeft")
        return self.threshold()

    def choose_language(self, label: str) -> None:
        """Selects the dropdown option whose text is `label` (e.g. "French (fra)")."""
        options = self.language.locator("option")
        texts = [text.replace("\u00a0", " ").strip() for text in options.all_inner_texts()]
        if label not in texts:
            raise AssertionError(f"{label!r} not among the language options {texts}")
        self.language.select_option(value=options.nth(texts.index(label)).get_attribute("value"))

    def screenshot(self, path: Path) -> None:
        """Saves the browser window with the panel scrolled to its top (controls, first rows)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        self.root.evaluate("element => element.scrollIntoView({block: 'start'})")
        self.page.screenshot(path=str(path))

    def wait_for_keywords(self, expected: dict, timeout_s: float = UPDATE_TIMEOUT_S) -> dict:
        """Polls the labels until they show `expected`; returns what was last shown."""
        deadline = time.monotonic() + timeout_s
        shown = self.keywords()
        while shown != expected and time.monotonic() < deadline:
            time.sleep(0.25)
            shown = self.keywords()
        return shown


# --------------------------------------------------------------------------------------------
# The test
# --------------------------------------------------------------------------------------------

def total(keywords: dict) -> int:
    return sum(len(words or []) for words in keywords.values())


def differences(shown: dict, expected: dict) -> str:
    lines = [f"  {name}: shown {shown.get(name)!r}, expected {expected.get(name)!r}"
             for name in sorted(set(shown) | set(expected))
             if shown.get(name) != expected.get(name)]
    return "\n".join(lines[:10]) + (f"\n  ... {len(lines) - 10} more" if len(lines) > 10 else "")


def reference_keywords(panel, **settings) -> dict[str, list[str] | None]:
    """What the panel shows for these settings, computed in this process (no browser)."""
    panel.set(**settings)
    shown = {name: None for name in panel.scan.pictures}
    shown.update({name: list(words) for name, words in panel.keywords().items()})
    return shown


def pick_threshold(panel, lang: str) -> float:
    """A threshold on the slider's grid (0.01) keeping about half of the keywords shown at 0, so
    that moving the slider there removes some keywords but not all (bisection: the count of
    keywords shown never grows with the threshold).

    Raises:
        AssertionError: no threshold below 1 removes a keyword (the model is saturated).
    """
    counts = {}

    def count(step: int) -> int:
        if step not in counts:
            counts[step] = total(reference_keywords(panel, lang=lang, min_proba=step / 100))
        return counts[step]

    if count(0) == 0:
        raise AssertionError("the model shows no keyword at threshold 0: cannot test the slider")
    half = count(0) / 2
    low, high = 0, 100                       # count(low) > half >= count(high), or high == 100
    while high - low > 1:
        middle = (low + high) // 2
        low, high = (middle, high) if count(middle) > half else (low, middle)
    fewer = [step for step in (low, high) if 0 < count(step) < count(0)] or [
        step for step in (low, high) if count(step) < count(0)]
    if not fewer:
        raise AssertionError(f"no threshold below 1 removes a keyword ({count(0)} keywords): "
                             "cannot test the slider")
    return min(fewer, key=lambda step: abs(count(step) - half)) / 100


def test_album_notebook_panel_in_browser(jupyter_lab, page, trained_run, sample_dir, tmp_path):
    """Notebook 4 in JupyterLab: the slider and the language dropdown change the keywords."""
    from helpers.config import resolve_bundle_dir
    from helpers.predict.predictors import Captioner
    from helpers.widgets import AlbumTaggingPanel

    if not NOTEBOOK.is_file():
        pytest.fail(f"{NOTEBOOK.name} is missing from the project")
    bundle = resolve_bundle_dir(trained_run)
    run_dir = bundle.parent
    source_album = sample_dir / "album"
    album_in_browser = tmp_path / "album-browser"      # tagged (and written) by the notebook
    album_reference = tmp_path / "album-reference"     # the same photos, for the reference panel
    shutil.copytree(source_album, album_in_browser)
    shutil.copytree(source_album, album_reference)
    settings = dict(lang="eng", min_proba=0.0, nb_keywords=5, captions=True, beam_width=1)
    name = write_notebook_copy(NOTEBOOK, jupyter_lab.root_dir, dict(
        settings, run_dir=str(run_dir), album_source=str(source_album),
        album_dir=str(album_in_browser)))

    # The reference: the same panel in this process, on the same model and photos.
    started = time.monotonic()
    reference = AlbumTaggingPanel(Captioner.from_bundle(bundle), album_reference, **settings)
    threshold = pick_threshold(reference, "eng")
    expected_start = reference_keywords(reference, lang="eng", min_proba=0.0)
    expected_threshold = reference_keywords(reference, lang="eng", min_proba=threshold)
    expected_french = reference_keywords(reference, lang="fra", min_proba=threshold)
    expected_spanish = reference_keywords(reference, lang="spa", min_proba=threshold)
    assert expected_french != expected_threshold, "French keywords identical to English ones"
    print(f"reference panel in {time.monotonic() - started:.0f} s; threshold {threshold}")

    with screenshot_on_failure(page):
        started = time.monotonic()
        open_notebook(page, jupyter_lab, name)
        run_all_cells(page, jupyter_lab)
        panel = AlbumPanelView(page)
        panel.wait_until_shown()
        print(f"notebook opened and run in {time.monotonic() - started:.0f} s")

        # 1. As the notebook left it: English, threshold 0, at most 5 keywords per photo.
        shown = panel.wait_for_keywords(expected_start)
        assert shown == expected_start, (
            f"keywords at the start:\n{differences(shown, expected_start)}")
        assert panel.threshold() == 0.0
        assert total(shown) > 0 and all(len(words or []) <= 5 for words in shown.values())

        # 2. Drag the confidence slider up: fewer keywords, each photo keeps its most likely ones.
        assert panel.drag_threshold_to(threshold) == pytest.approx(threshold)
        shown = panel.wait_for_keywords(expected_threshold)
        assert shown == expected_threshold, (
            f"keywords at confidence >= {threshold}:\n{differences(shown, expected_threshold)}")
        assert 0 < total(shown) < total(expected_start)
        for picture, words in shown.items():
            if words is not None:
                assert words == expected_start[picture][:len(words)], picture

        # 3. Change the language: the same photos, their keywords in French, then in Spanish.
        panel.choose_language("French (fra)")
        shown = panel.wait_for_keywords(expected_french)
        assert shown == expected_french, (
            f"keywords in French:\n{differences(shown, expected_french)}")
        panel.screenshot(SCREENSHOT_DIR / "album_panel.png")
        panel.choose_language("Spanish (spa)")
        shown = panel.wait_for_keywords(expected_spanish)
        assert shown == expected_spanish, (
            f"keywords in Spanish:\n{differences(shown, expected_spanish)}")
        assert panel.threshold() == pytest.approx(threshold)  # the language kept the threshold
        print(f"panel checked in {time.monotonic() - started:.0f} s from opening the notebook")
