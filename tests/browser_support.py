"""Helpers for driving a real JupyterLab page with headless Chromium (tests/test_browser.py).

The recipe (shared/reference/browser_test_recipe.md, JupyterLab 4 + ipywidgets 8):
- everything Jupyter, IPython, matplotlib and Chromium would write under ``~`` goes to a temp
  folder, so a run neither reads a stale workspace nor leaves files behind;
- the notebook is a *copy* in the server's temp root: Lab marks it modified as soon as it opens
  and its autosave would otherwise write into the repository;
- the server is ``sys.executable -m jupyterlab`` so the kernel runs in this same interpreter;
- it is stopped through ``/api/shutdown`` (which also stops its kernels), then waited for.

Chromium comes from the distribution (``apt-get install chromium``); Playwright only drives it,
so ``playwright install`` is never needed.
"""
from __future__ import annotations

import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from contextlib import contextmanager
from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")
REQUIRE_ENV = "YOLACT_EDU_REQUIRE_BROWSER"
SCREENSHOTS_ENV = "YOLACT_EDU_SCREENSHOTS"

CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    # CI containers often have a 64 MB /dev/shm; Debian's wrapper only adds this flag sometimes
    "--disable-dev-shm-usage",
]

# The status bar reads "Python 3 (ipykernel) | Idle" (or "| Busy")
IDLE_JS = """() => {
    const bar = document.querySelector('#jp-main-statusbar');
    return bar !== null && /\\bIdle\\b/.test(bar.innerText);
}"""


def browser_unavailable_reason() -> str | None:
    """Why the browser test cannot run here, or None when Chromium and Playwright are both present."""
    if not CHROMIUM.is_file():
        return f"{CHROMIUM} is missing (Debian/Ubuntu: apt-get install chromium)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "the playwright package is missing (pip install -e '.[dev]')"
    return None


def require_browser() -> None:
    """Skip when there is no browser, unless ``YOLACT_EDU_REQUIRE_BROWSER`` is set (CI sets it):
    then a missing browser is a failure, so CI can never pass by silently skipping."""
    reason = browser_unavailable_reason()
    if reason is None:
        return
    if os.environ.get(REQUIRE_ENV, "").strip() not in ("", "0"):
        pytest.fail(f"{REQUIRE_ENV} is set but the browser test cannot run: {reason}")
    pytest.skip(reason)


def isolated_env(root: Path, **extra: str) -> dict[str, str]:
    """The environment for the server (and so the kernel) and Chromium: HOME and every
    Jupyter/IPython/matplotlib directory inside ``root``; a news-free Lab settings folder."""
    home = root / "home"
    dirs = {
        "HOME": home,
        "JUPYTER_CONFIG_DIR": home / "jupyter_config",
        "JUPYTER_DATA_DIR": home / "jupyter_data",
        "JUPYTER_RUNTIME_DIR": home / "jupyter_runtime",
        "JUPYTERLAB_SETTINGS_DIR": home / "lab_settings",
        "JUPYTERLAB_WORKSPACES_DIR": home / "lab_workspaces",
        "IPYTHONDIR": home / "ipython",
        "MPLCONFIGDIR": home / "matplotlib",
        "XDG_CONFIG_HOME": home / ".config",
        "XDG_CACHE_HOME": home / ".cache",
    }
    for path in dirs.values():
        path.mkdir(parents=True, exist_ok=True)
    # Without this a "get notified about Jupyter news?" toast covers the bottom-right of the page
    # (--LabApp.news_url=None does not remove it)
    notification = dirs["JUPYTERLAB_SETTINGS_DIR"] / "@jupyterlab" / "apputils-extension"
    notification.mkdir(parents=True, exist_ok=True)
    (notification / "notification.jupyterlab-settings").write_text(
        json.dumps({"fetchNews": "false", "checkForUpdates": False}))
    # Lab may leave off-screen cells out of the DOM; render them all so selectors always find them
    tracker = dirs["JUPYTERLAB_SETTINGS_DIR"] / "@jupyterlab" / "notebook-extension"
    tracker.mkdir(parents=True, exist_ok=True)
    (tracker / "tracker.jupyterlab-settings").write_text(json.dumps({"windowingMode": "none"}))
    env = {**os.environ, **{k: str(v) for k, v in dirs.items()}, **extra}
    # a JUPYTER_PATH or PYTHONSTARTUP from the developer's shell must not leak into the kernel
    for name in ("JUPYTER_PATH", "JUPYTER_PREFER_ENV_PATH", "PYTHONSTARTUP"):
        env.pop(name, None)
    return env


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class JupyterLabServer:
    """``jupyter lab`` on 127.0.0.1 with a random port and token, serving ``root``.

    >>> with JupyterLabServer(root, env) as server:
    ...     page.goto(server.url("lab/tree/nb.ipynb"))
    """

    def __init__(self, root: Path, env: dict[str, str], log_path: Path, start_timeout: float = 120.0):
        self.root, self.env, self.log_path, self.start_timeout = root, env, log_path, start_timeout
        self.port = free_port()
        self.token = secrets.token_hex(16)
        self.base = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen | None = None

    def url(self, path: str) -> str:
        return f"{self.base}/{path.lstrip('/')}?token={self.token}"

    def __enter__(self) -> JupyterLabServer:
        cmd = [sys.executable, "-m", "jupyterlab", "--no-browser", "--ip=127.0.0.1", f"--port={self.port}",
               "--ServerApp.port_retries=0", f"--IdentityProvider.token={self.token}",
               f"--ServerApp.root_dir={self.root}", "--LabApp.expose_app_in_browser=True", "--allow-root"]
        self._log = open(self.log_path, "wb")
        self.process = subprocess.Popen(cmd, cwd=self.root, env=self.env, stdout=self._log,
                                        stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"jupyter lab exited with code {self.process.returncode}:\n{self.log_tail()}")
            try:
                with urllib.request.urlopen(self.url("api/status"), timeout=5) as resp:
                    if resp.status == 200:
                        return
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            time.sleep(0.25)
        raise TimeoutError(f"jupyter lab did not answer within {self.start_timeout:.0f} s:\n{self.log_tail()}")

    def stop(self) -> None:
        """POST /api/shutdown (stops the kernels too), then wait; terminate/kill only as a fallback."""
        if self.process is None:
            return
        if self.process.poll() is None:
            try:
                req = urllib.request.Request(self.url("api/shutdown"), method="POST", data=b"")
                urllib.request.urlopen(req, timeout=10).close()
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.terminate()
                try:
                    self.process.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    self.process.kill()
                    self.process.wait()
        self._log.close()
        self.process = None

    def log_tail(self, chars: int = 4000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""


def launch_chromium(playwright, home: Path):
    """Debian's /usr/bin/chromium, headless, with HOME in the temp folder (Chromium writes crash
    reports and dconf caches under ~ even with a user-data-dir)."""
    return playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS,
                                      env={**os.environ, "HOME": str(home)})


def screenshot_dir(tmp_path: Path) -> Path:
    """``$YOLACT_EDU_SCREENSHOTS`` when set (CI keeps them as artifacts), else the test's tmp_path."""
    target = Path(os.environ[SCREENSHOTS_ENV]) if os.environ.get(SCREENSHOTS_ENV) else tmp_path / "screenshots"
    target.mkdir(parents=True, exist_ok=True)
    return target


def copy_notebook(src: Path, root: Path) -> Path:
    dst = root / src.name
    shutil.copyfile(src, dst)
    return dst


@contextmanager
def lab_page(tmp_path: Path, notebook: Path, **env_extra: str):
    """A copy of ``notebook`` opened in a JupyterLab started here (fresh HOME and notary, so the
    notebook is untrusted, as cloned), in headless Chromium; yields (page, screenshot folder).
    On a failure the server's log is printed and the page's screenshot kept."""
    from playwright.sync_api import sync_playwright

    root = tmp_path / "root"
    root.mkdir()
    copy = copy_notebook(notebook, root)   # Lab's autosave must not write into the repository
    env = isolated_env(tmp_path, **env_extra)
    shots = screenshot_dir(tmp_path)
    with JupyterLabServer(root, env, tmp_path / "jupyter.log") as server, sync_playwright() as pw:
        browser = launch_chromium(pw, Path(env["HOME"]))
        page = None
        try:
            page = browser.new_page(viewport={"width": 1440, "height": 1300})
            page.set_default_timeout(60_000)
            page.goto(server.url(f"lab/tree/{copy.name}"))
            page.wait_for_selector(".jp-Notebook .jp-Cell")
            yield page, shots
        except BaseException:
            # pytest shows captured stdout for a failed test: the server's log, and where the page is
            print(f"--- jupyter lab log (tail) ---\n{server.log_tail()}")
            if page is not None:
                try:
                    page.screenshot(path=str(shots / "failure.png"))
                    print(f"screenshot of the failure: {shots / 'failure.png'}")
                except Exception as exc:  # the browser itself may be what failed
                    print(f"no failure screenshot: {exc}")
            raise
        finally:
            browser.close()


# --- the page -------------------------------------------------------------------------------

# Error outputs in the notebook model (needs --LabApp.expose_app_in_browser=True): the DOM
# renders errors and stderr alike, the model tells them apart
ERRORS_JS = """() => {
    const panel = window.jupyterapp && window.jupyterapp.shell.currentWidget;
    if (!panel || !panel.content || !panel.content.model) return [];
    const cells = panel.content.model.cells;
    const errors = [];
    for (let i = 0; i < cells.length; i++) {
        const cell = cells.get(i);
        if (cell.type !== 'code') continue;
        for (let j = 0; j < cell.outputs.length; j++) {
            const out = cell.outputs.get(j).toJSON();
            if (out.output_type === 'error') errors.push(`cell ${i}: ${out.ename}: ${out.evalue}`);
        }
    }
    return errors;
}"""

# One snapshot of what the waits look at. Prompts read "[*]:" while a cell is queued or running.
STATE_JS = """(sel) => {
    const bar = document.querySelector('#jp-main-statusbar');
    const label = document.querySelector(sel.label);
    const img = document.querySelector(sel.img);
    const prompts = [...document.querySelectorAll('.jp-Notebook .jp-CodeCell .jp-InputPrompt')];
    return {
        idle: bar !== null && /\\bIdle\\b/.test(bar.innerText),
        running: prompts.filter(p => p.innerText.includes('*')).length,
        label: label === null ? null : label.innerText.trim(),
        src: img === null ? null : img.getAttribute('src'),
        errors: (ERRORS)(),
    };
}""".replace("(ERRORS)", f"({ERRORS_JS})")


def wait_idle(page, timeout: float = 60.0) -> None:
    page.wait_for_function(IDLE_JS, timeout=timeout * 1000)


def wait_settled(page, selectors: dict[str, str], until=lambda state: True, timeout: float = 60.0,
                 quiet: float = 1.5, poll: float = 0.2) -> dict:
    """Wait until ``until(state)`` holds, the kernel is Idle, no cell is running, and label and
    image have not changed for ``quiet`` seconds; return that state. ``selectors`` has the CSS
    selectors "label" and "img". An error output in any cell fails at once.

    Why a quiet period and not a single Idle: each slider step is its own comm message, and
    ipywidgets sends the next one only when the previous one's Idle arrives, so the status bar
    flickers to Idle between steps and the label can move before the figure is redrawn."""
    deadline = time.monotonic() + timeout
    stable_since, last = None, None
    while True:
        state = page.evaluate(STATE_JS, selectors)
        if state["errors"]:
            raise AssertionError("the notebook shows an error:\n" + "\n".join(state["errors"]))
        key = (state["label"], state["src"])
        ok = state["idle"] and state["running"] == 0 and until(state)
        if ok and key == last:
            if time.monotonic() - stable_since >= quiet:
                return state
        else:
            stable_since = time.monotonic()
        last = key if ok else None
        if time.monotonic() > deadline:
            summary = {**state, "src": short(state["src"])}
            raise TimeoutError(f"the page did not settle within {timeout:.0f} s; last state: {summary}")
        time.sleep(poll)


def notebook_errors(page) -> list[str]:
    return page.evaluate(ERRORS_JS)


def run_all_cells(page) -> None:
    """Run > Run All Cells, through the menu bar as a reader would."""
    page.get_by_role("menuitem", name="Run", exact=True).click()
    page.get_by_role("menuitem", name="Run All Cells", exact=True).click()


def short(src: str | None) -> str | None:
    """An image src fit for a message (a data: URL is tens of kB)."""
    return src if src is None or len(src) <= 60 else f"{src[:40]}...({len(src)} chars)"
