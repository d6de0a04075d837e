"""End to end in a real browser: JupyterLab runs notebook 02, and the prototype explorer reacts.

Headless Chromium (Debian's, driven by Playwright) opens the notebook in a JupyterLab started
here on 127.0.0.1, runs all cells in quick mode (Run > Run All Cells), then moves a coefficient
slider (arrow keys on its handle; c0, else c1.. up to c3, since a prototype can be dead in the
chosen box) and the mask-threshold slider (a value typed into its readout). After each move the
kernel must have redrawn: the mask's pixel count (from its label) must change, the figure's PNG
must differ in its decoded pixels, and so must screenshots of the widget taken before and after.
Last, §3's explorer switches from the crowded model to the shapes model, and its picture changes.
Screenshots of the page before and after each move go to ``$YOLACT_EDU_SCREENSHOTS`` (else
pytest's tmp_path).

Skipped without /usr/bin/chromium or playwright; with ``YOLACT_EDU_REQUIRE_BROWSER=1`` (.ci/run
sets it) that is a failure instead. A plain sync test on purpose: Playwright's sync API refuses
to run inside an asyncio loop.
"""
from __future__ import annotations

import base64
import io
import re
import time
from pathlib import Path

import numpy as np
import pytest
from browser_support import (
    lab_page,
    notebook_errors,
    require_browser,
    run_all_cells,
    short,
    wait_idle,
    wait_settled,
)
from PIL import Image

REPO = Path(__file__).resolve().parent.parent
NOTEBOOK = REPO / "notebooks" / "02_prototypes_and_coefficients.ipynb"

WIDGET = ".jp-OutputArea-output:has(.ye-coef-slider)"
SELECTORS = {"label": ".ye-mask-label", "img": ".ye-explorer-figure img"}
COEF_PRESSES = 40  # 0.40 at step 0.01: far enough to move a mask's edge by many pixels
COEF_SLIDERS_TRIED = 4  # a prototype can be dead (all zero in the box): then its coefficient changes nothing


def _shoot(page, shots: Path, name: str) -> np.ndarray:
    """Screenshots of the page and of the explorer; returns the explorer's, decoded [H,W,3]."""
    page.locator(SELECTORS["img"]).first.scroll_into_view_if_needed()   # section 2's explorer, not section 7's
    page.screenshot(path=str(shots / f"{name}.png"))
    widget = shots / f"{name}_widget.png"
    page.locator(WIDGET).first.screenshot(path=str(widget))
    return np.asarray(Image.open(widget).convert("RGB"))


def _readout(slider) -> float:
    # the readout is the value the view holds (aria-valuenow is rounded to one decimal);
    # it prints negatives with U+2212
    return float(slider.locator(".widget-readout").inner_text().replace("\u2212", "-"))


def _wait_readout(slider, target: float, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while abs(_readout(slider) - target) > 1e-6:
        assert time.monotonic() < deadline, f"the slider shows {_readout(slider)}, expected {target}"
        time.sleep(0.1)


def _press_coefficient(page, index: int, before: dict) -> dict:
    """Arrow keys on coefficient slider ``index``, away from its nearer end; the settled state
    once the kernel has answered."""
    slider = page.locator(".ye-coef-slider").nth(index)
    start = _readout(slider)
    key, sign = ("ArrowLeft", -1) if start > 0 else ("ArrowRight", 1)
    handle = slider.locator(".noUi-handle")
    handle.focus()
    for _ in range(COEF_PRESSES):
        handle.press(key)
    _wait_readout(slider, round(start + sign * COEF_PRESSES * 0.01, 2))
    return wait_settled(page, SELECTORS, until=lambda s: _changed(before, s))


def _type_threshold(page, value: float, before: dict) -> dict:
    """A value typed into the mask-threshold readout; the settled state once the kernel has answered."""
    slider = page.locator(".ye-mask-threshold").first
    readout = slider.locator(".widget-readout")
    readout.click()
    readout.press("Control+A")
    readout.type(f"{value}")
    readout.press("Enter")
    _wait_readout(slider, value)
    return wait_settled(page, SELECTORS, until=lambda s: _changed(before, s))


MASK_PIXELS = re.compile(r"mask (\d+) px")
CHANGED_PIXELS = 50          # a mask's edge moving by a few pixels changes far more than this


def _mask_pixels(label: str | None) -> int:
    found = MASK_PIXELS.search(label or "")
    assert found, f"the explorer's label does not give the mask's size: {label!r}"
    return int(found.group(1))


def _decoded(src: str) -> np.ndarray:
    """An <img> data URL -> its pixels [H,W,3]."""
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(src.split(",", 1)[1]))).convert("RGB"))


def _pixels_differ(a: np.ndarray, b: np.ndarray) -> int:
    return int((a != b).any(axis=-1).sum()) if a.shape == b.shape else a.size


def _changed(before: dict, state: dict) -> bool:
    return state["label"] != before["label"] or state["src"] != before["src"]


def _assert_redrawn(before: dict, after: dict, what: str) -> None:
    """The mask itself changed (its pixel count, not just a printed setting) and so did the
    picture's decoded pixels (not just the PNG's bytes)."""
    assert after["src"] and after["src"].startswith("data:image/png"), f"{what}: the figure is not a PNG: " \
                                                                        f"{short(after['src'])}"
    was, now = _mask_pixels(before["label"]), _mask_pixels(after["label"])
    assert now != was, f"{what}: the mask stayed {was} px"
    changed = _pixels_differ(_decoded(before["src"]), _decoded(after["src"]))
    assert changed > CHANGED_PIXELS, f"{what}: only {changed} pixels of the figure changed"


@pytest.mark.e2e
def test_prototype_explorer_in_jupyterlab(tmp_path):
    require_browser()
    assert NOTEBOOK.is_file(), f"{NOTEBOOK} is missing"
    with lab_page(tmp_path, NOTEBOOK, YOLACT_EDU_QUICK="1") as (page, shots):
        wait_idle(page, timeout=120)  # the kernel has started
        run_all_cells(page)
        state = wait_settled(page, SELECTORS, until=lambda s: s["src"] is not None and bool(s["label"]),
                             timeout=240, quiet=2.0)
        assert notebook_errors(page) == []
        shown = _shoot(page, shots, "01_after_run_all")

        # a coefficient: arrow keys on the first slider whose prototype reaches into the box
        for index in range(COEF_SLIDERS_TRIED):
            before, after = state, _press_coefficient(page, index, state)
            state = after
            if _mask_pixels(after["label"]) != _mask_pixels(before["label"]):
                break  # else a dead prototype: redrawn, same mask; try the next coefficient
        print(f"coefficient slider {index}: {before['label']!r} -> {after['label']!r}")
        _assert_redrawn(before, after, f"coefficient sliders 0-{index}")
        now = _shoot(page, shots, "02_after_coefficient")
        assert _pixels_differ(shown, now) > CHANGED_PIXELS, "the browser still shows the old explorer picture"
        shown = now

        # the mask threshold: a value typed into its readout
        before = state
        threshold = _readout(page.locator(".ye-mask-threshold").first)
        after = _type_threshold(page, 0.3 if threshold > 0.4 else 0.7, before)
        print(f"mask threshold: {before['label']!r} -> {after['label']!r}")
        _assert_redrawn(before, after, "mask-threshold slider")
        now = _shoot(page, shots, "03_after_threshold")
        assert _pixels_differ(shown, now) > CHANGED_PIXELS, "the browser still shows the old explorer picture"
        assert notebook_errors(page) == []
        _switch_models(page, shots)


def _switch_models(page, shots: Path) -> None:
    """§3's explorer holds two models: picking the other one redraws the same image through it."""
    picker = page.locator(".ye-model select")
    page.mouse.move(700, 700)
    for _ in range(300):               # JupyterLab renders only the cells near the view: scroll down to it
        if picker.count():
            break
        page.mouse.wheel(0, 600)
        page.wait_for_timeout(100)
    assert picker.count() == 1, "notebook 02 shows no explorer with a model picker"
    picker.scroll_into_view_if_needed()
    explorer = page.locator(".jp-OutputArea-output:has(.ye-model)")
    state = {"label": ".ye-mask-label", "img": ".ye-explorer-figure img"}

    def read() -> dict:
        return {"label": explorer.locator(state["label"]).inner_text(),
                "src": explorer.locator(state["img"]).get_attribute("src")}

    before = read()
    assert picker.input_value() == "crowded model"
    picker.select_option("shapes model")
    deadline = time.monotonic() + 60
    while read()["src"] == before["src"]:
        assert time.monotonic() < deadline, "picking the other model did not redraw the explorer"
        time.sleep(0.2)
    time.sleep(1.0)                    # the label and the picture arrive as separate messages
    after = read()
    page.screenshot(path=str(shots / "04_other_model.png"))
    changed = _pixels_differ(_decoded(before["src"]), _decoded(after["src"]))
    assert changed > CHANGED_PIXELS, f"the other model's picture differs in only {changed} pixels"
    assert notebook_errors(page) == []


EXPLORER_CELL = '.jp-CodeCell:has(.jp-InputArea-editor:has-text("PrototypeExplorer(model"))'


@pytest.mark.e2e
def test_a_cloned_notebook_shows_the_explorers_picture_before_anything_runs(tmp_path):
    """First contact: the committed notebook, opened as cloned (untrusted, nothing run), shows the
    explorer's picture, not its Python repr; the picture is the one the kernel made, decoded."""
    require_browser()
    import base64
    import json

    committed = json.loads(NOTEBOOK.read_text())
    snapshots = [o["data"]["image/png"] for c in committed["cells"] if c["cell_type"] == "code"
                 for o in c.get("outputs", []) if "application/vnd.jupyter.widget-view+json" in o.get("data", {})
                 and "image/png" in o["data"]]
    assert snapshots, "notebook 02's committed widget outputs carry no picture: rerun it"
    with lab_page(tmp_path, NOTEBOOK) as (page, shots):       # untrusted: a fresh notary, nothing run
        picture = page.locator(EXPLORER_CELL).first.locator(".jp-OutputArea-output img").first
        picture.scroll_into_view_if_needed()
        picture.wait_for(state="visible")
        page.screenshot(path=str(shots / "00_as_cloned.png"))
        shown = picture.get_attribute("src").split(",", 1)[1]
        assert base64.b64decode(shown) == base64.b64decode(snapshots[0])
        assert picture.evaluate("img => img.naturalWidth") > 400      # decoded by the browser, not a broken icon
        assert page.get_by_text("PrototypeExplorer(children").count() == 0
