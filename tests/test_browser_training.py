"""End to end in a real browser: Stop in notebook 04 works in the natural flow.

JupyterLab runs notebook 04 with Run > Run All Cells (quick mode), so the cells below the training
are already queued in the kernel when the learner clicks Stop. The click must still reach the
kernel (the training cell returns at once and the next cell *awaits* the end), training must end
before its last iteration, the cells below must then run, and the monitor's progress bar, speed
label, status line and loss plot must all tell the same story. Same browser machinery as
test_browser.py (skipped without Chromium unless YOLACT_EDU_REQUIRE_BROWSER is set).
"""
from __future__ import annotations

import io
import re
import time
from pathlib import Path

import numpy as np
import pytest
from browser_support import lab_page, notebook_errors, require_browser, run_all_cells, wait_idle
from PIL import Image

REPO = Path(__file__).resolve().parent.parent
NOTEBOOK = REPO / "notebooks" / "04_train_on_a_coco_subset.ipynb"
QUICK_ITERATIONS = 30            # notebook 04's MAX_ITER in quick mode
AT = re.compile(r"^(\d+)/(\d+)")
STOPPED = re.compile(r"^stopped at iteration (\d+)/(\d+)")

MONITOR_JS = """() => {
    const text = sel => { const e = document.querySelector(sel); return e === null ? null : e.innerText.trim(); };
    const bar = document.querySelector('.ye-progress .progress-bar');
    const prompts = [...document.querySelectorAll('.jp-Notebook .jp-CodeCell .jp-InputPrompt')];
    const statusbar = document.querySelector('#jp-main-statusbar');
    return {
        rate: text('.ye-rate'), status: text('.ye-train-status'),
        bar: bar === null ? null : bar.style.width,
        running: prompts.filter(p => p.innerText.includes('*')).length,
        idle: statusbar !== null && /\\bIdle\\b/.test(statusbar.innerText),
        outputs: [...document.querySelectorAll('.jp-OutputArea-output')].map(o => o.innerText).join('\\n'),
    };
}"""


def _poll(page, until, what: str, timeout: float) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        state = page.evaluate(MONITOR_JS)
        errors = notebook_errors(page)
        assert not errors, "the notebook shows an error:\n" + "\n".join(errors)
        if until(state):
            return state
        assert time.monotonic() < deadline, f"waited {timeout:.0f} s for {what}; last state: " + str(
            {k: v for k, v in state.items() if k != "outputs"})
        time.sleep(0.1)


def _coloured_pixels(png: bytes) -> int:
    """Pixels of a screenshot that are clearly coloured: the loss curves. The placeholder shown
    before the first log row is black text on white and has none."""
    rgb = np.asarray(Image.open(io.BytesIO(png)).convert("RGB")).astype(int)
    return int(((rgb.max(axis=2) - rgb.min(axis=2)) > 80).sum())


@pytest.mark.e2e
def test_stop_during_run_all_ends_training_and_the_notebook_carries_on(tmp_path):
    require_browser()
    with lab_page(tmp_path, NOTEBOOK, YOLACT_EDU_QUICK="1") as (page, shots):
        wait_idle(page, timeout=120)
        run_all_cells(page)
        # training has logged its first row and is still going
        started = _poll(page, lambda s: s["rate"] and AT.match(s["rate"]) and 0 < int(AT.match(s["rate"])[1])
                        < QUICK_ITERATIONS - 10 and s["status"] == "training", "training to start", 240)
        assert started["running"] > 1, "the cells below the training were not queued (not Run All)"
        page.locator(".ye-stop button, button.ye-stop").first.click()
        page.screenshot(path=str(shots / "10_stop_clicked.png"))

        stopped = _poll(page, lambda s: s["status"] and STOPPED.match(s["status"]), "the status to say stopped", 120)
        iteration, total = map(int, STOPPED.match(stopped["status"]).groups())
        assert total == QUICK_ITERATIONS and iteration < total, stopped["status"]

        # the queued cells ran to the end: the awaiting cell printed, the last widget drew
        done = _poll(page, lambda s: s["idle"] and s["running"] == 0
                     and page.locator(".ye-score-threshold").count() > 0, "the cells below to finish", 300)
        page.screenshot(path=str(shots / "11_after_run_all.png"))
        assert f"stopped early: True; {iteration} iterations" in done["outputs"]
        assert notebook_errors(page) == []
        # bar, speed label, status line and loss plot agree on the iteration
        assert done["status"] == stopped["status"]                      # no late "stopping..." over it
        assert AT.match(done["rate"]).groups() == (str(iteration), str(total)), done["rate"]
        assert float(done["bar"].rstrip("%")) == pytest.approx(100 * iteration / total, abs=0.01), done["bar"]
        plot = page.locator(".ye-loss-plot").first
        plot.scroll_into_view_if_needed()
        assert _coloured_pixels(plot.screenshot(path=str(shots / "12_loss_plot.png"))) > 300, \
            "the loss plot shows no curves"
