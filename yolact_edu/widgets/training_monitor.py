"""TrainingMonitor: watch a :class:`~yolact_edu.training.trainer.Trainer` learn, and stop it cleanly.

It registers itself as a trainer callback: each "log" row updates the progress bar, the images/s
and the loss curves by component; every ``refresh_every`` iterations (and at validations and the
end) the sample images are predicted again with the weights of that moment. The Stop button calls
:meth:`Trainer.request_stop`: the current step finishes, its losses are logged, a checkpoint is
written and :meth:`Trainer.run` returns; the bar, the status line and the loss plot then all end
at that iteration.

Training runs in a background thread (:meth:`start` returns at once), so the kernel stays free to
receive the button's click. A later cell waits with ``await monitor.finished()``: awaiting (rather
than blocking in :meth:`wait`) keeps the kernel listening to the button, even during Run All,
when the cells below are already queued. :meth:`wait` is for scripts; an interrupt of the kernel
(the toolbar's ■) while it waits stops training the same way.

    >>> monitor = TrainingMonitor(trainer, sample_images=[val.load_image(0), val.load_image(1)])
    >>> monitor.show()                    # the widget (its picture is kept with the notebook)
    >>> monitor.start()                   # returns at once; the picture updates as training goes
    >>> summary = await monitor.finished()   # in a later cell
"""
from __future__ import annotations

import asyncio
import threading
import time

import ipywidgets as widgets
import numpy as np
from IPython.display import DisplayHandle, display

from ..viz.draw import LOSS_PARTS, draw_detections, plot_loss_curves
from ..viz.figures import figure_png
from .render import StaticSnapshot, new_figure


class TrainingMonitor(StaticSnapshot, widgets.VBox):
    """Live view and stop button for ``trainer`` (its tqdm bar is switched off: this replaces it).

    sample_images: HxWx3 uint8 images whose predictions are redrawn during training (may be empty).
    refresh_every: iterations between sample refreshes (default: a fifth of the run).
    redraw_seconds: the loss plot is redrawn at most this often (rendering costs training time).

    State: ``history`` (dict of lists from the log rows), ``validations``, ``summary`` (the dict
    :meth:`Trainer.run` returned, once finished), ``error`` (an exception raised by training),
    ``loss_figure`` / ``samples_figure`` (matplotlib), ``sample_refreshes`` (count).
    """

    def __init__(self, trainer, sample_images=(), *, refresh_every: int | None = None,
                 score_threshold: float = 0.3, redraw_seconds: float = 1.0):
        self.trainer = trainer
        trainer.progress = False
        trainer.callbacks.append(self.on_event)
        self.sample_images = [np.ascontiguousarray(image) for image in sample_images]
        self.refresh_every = refresh_every or max(trainer.log_every, trainer.max_iter // 5)
        self.score_threshold, self.redraw_seconds = score_threshold, redraw_seconds
        self.history: dict[str, list[float]] = {}
        self.validations: list[dict] = []
        self.summary: dict | None = None
        self.error: BaseException | None = None
        self.sample_refreshes = 0
        self._last_sample_iteration = trainer.iteration
        self._last_redraw = 0.0
        self._thread: threading.Thread | None = None
        # the status line is written by the button (kernel thread) and by the end of training
        # (training thread): the lock keeps "stopping..." from landing after "stopped at ..."
        self._state_lock = threading.Lock()
        self._display: DisplayHandle | None = None
        self._active = False
        self._started = None
        self.loss_figure = new_figure(7, 3.6, dpi=80)
        self.samples_figure = new_figure(3.2 * max(1, len(self.sample_images)), 3.4, dpi=80)

        self.progress = widgets.IntProgress(value=trainer.iteration, min=0, max=trainer.max_iter,
                                            description="iteration", bar_style="info")
        self.rate = widgets.Label(f"{trainer.iteration}/{trainer.max_iter}: not started")
        self.stop_button = widgets.Button(description="Stop (saves a checkpoint)", icon="stop", button_style="danger",
                                          layout=widgets.Layout(width="230px"))
        self.status = widgets.Label()
        # never wider than the notebook: a narrow window scales the picture down instead of clipping it
        fit = {"max_width": "100%", "height": "auto"}
        self.loss_image = widgets.Image(format="png", layout=widgets.Layout(**fit))
        self.samples_image = widgets.Image(format="png", layout=widgets.Layout(**fit))
        for widget, css in [(self.progress, "ye-progress"), (self.rate, "ye-rate"), (self.stop_button, "ye-stop"),
                            (self.status, "ye-train-status"), (self.loss_image, "ye-loss-plot"),
                            (self.samples_image, "ye-samples")]:
            widget.add_class(css)
        self.stop_button.disabled = True                 # until start()
        self.stop_button.on_click(lambda _: self.stop())
        super().__init__([widgets.HBox([self.progress, self.rate, self.stop_button]), self.status,
                          widgets.HBox([self.loss_image, self.samples_image],
                                       layout=widgets.Layout(flex_flow="row wrap"))])   # samples below if narrow
        self._draw_samples()

    # -- trainer callback ------------------------------------------------------------------
    def on_event(self, event: str, info: dict) -> None:
        """The :class:`Trainer` callback; also callable directly (the tests feed it rows)."""
        if event == "log":
            for key, value in info.items():
                self.history.setdefault(key, []).append(float(value))
            iteration = int(info["iteration"])
            self.progress.value = iteration
            rate = float(info.get("images_per_second", 0.0))
            left = (self.trainer.max_iter - iteration) * self.trainer.batch_size / rate if rate > 0 else float("nan")
            eta = f"{int(left // 60)}:{int(left % 60):02d}" if np.isfinite(left) else "?"
            self.rate.value = f"{iteration}/{self.trainer.max_iter} · {rate:.1f} img/s · {eta} left"
            final = iteration >= self.trainer.max_iter
            if final or time.perf_counter() - self._last_redraw >= self.redraw_seconds:
                self._draw_losses()
            if final or iteration - self._last_sample_iteration >= self.refresh_every:
                self._draw_samples()
        elif event == "validation":
            self.validations.append(dict(info))
            self.status.value = (f"validation at {info['iteration']}: box AP {info['box_AP']:.3f}, "
                                 f"mask AP {info['mask_AP']:.3f}")
            self._draw_samples()
        elif event == "checkpoint":
            self.status.value = f"checkpoint written: {info['path']}"

    # -- control -----------------------------------------------------------------------------
    def snapshot_png(self) -> bytes:
        """The loss plot, the picture an untrusted notebook shows for this monitor."""
        return bytes(self.loss_image.value or b"")

    def show(self) -> None:
        """Display the monitor so that its saved output can be refreshed: when training ends,
        :meth:`finished` / :meth:`wait` replace the picture kept with the notebook (the one a
        reader sees before running anything) by the final loss plot."""
        self._display = display(self, display_id=True)

    def stop(self) -> None:
        """Ask the trainer to stop after the current step (it logs it and writes a checkpoint).
        Does nothing once training has ended."""
        with self._state_lock:
            if not self.running:
                return
            self.trainer.request_stop()
            self.stop_button.disabled = True
            self.status.value = "stopping after this step; a checkpoint will be written"

    def start(self) -> None:
        """Train in a background thread; returns at once."""
        if self.running:
            raise RuntimeError("training is already running")
        self.summary, self.error = None, None
        self.stop_button.disabled = False
        self.progress.bar_style = "info"
        self.status.value = "training"
        self._active = True
        self._thread = threading.Thread(target=self._train, name="yolact-edu-training", daemon=True)
        self._thread.start()

    async def finished(self) -> dict:
        """Wait (in a notebook: ``await monitor.finished()``) until training ends, keeping the
        kernel free for the Stop button meanwhile; returns :meth:`Trainer.run`'s summary
        (re-raises its error)."""
        self._require_started()
        while self.running:
            await asyncio.sleep(0.2)
        return self._result()

    def wait(self) -> dict:
        """Block until training ends; returns :meth:`Trainer.run`'s summary (re-raises its error).
        While it blocks the kernel hears no button: in a notebook use :meth:`finished`."""
        self._require_started()
        while self._thread.is_alive():
            try:
                self._thread.join(0.2)
            except KeyboardInterrupt:       # the notebook's interrupt button while waiting
                self.stop()
        return self._result()

    def run(self) -> dict:
        """:meth:`start` then :meth:`wait`."""
        self.start()
        return self.wait()

    def _require_started(self) -> None:
        if self._thread is None:
            raise RuntimeError("call start() first")

    def _result(self) -> dict:
        if self._display is not None:
            self._display.update(self)      # the saved output now carries the final picture
        if self.error is not None:
            raise self.error
        return self.summary

    @property
    def running(self) -> bool:
        """True from :meth:`start` until the final state (status, bar, pictures) is in place."""
        return self._active

    def _train(self) -> None:
        try:
            summary = self.trainer.run()
            error = None
        except BaseException as exc:        # shown in the widget, re-raised by wait()
            summary, error = None, exc
        # pictures first, then the state: once `running` is False the pictures are final
        self._draw_losses()
        self._draw_samples()
        with self._state_lock:
            self.summary, self.error = summary, error
            self.progress.value = self.trainer.iteration
            speed = self.history.get("images_per_second")
            self.rate.value = f"{self.trainer.iteration}/{self.trainer.max_iter}" + (
                f" · {speed[-1]:.1f} img/s" if speed else "")      # no time left to show
            self.stop_button.disabled = True
            if error is not None:
                self.status.value = f"training failed: {type(error).__name__}: {error}"
                self.progress.bar_style = "danger"
            else:
                stopped = summary.get("stopped") or summary.get("interrupted")
                self.status.value = (f"{'stopped' if stopped else 'finished'} at iteration "
                                     f"{summary['iteration']}/{summary['max_iter']}; checkpoint "
                                     f"{summary['checkpoint']}")
                self.progress.bar_style = "warning" if stopped else "success"
            self._active = False            # from here on stop() does nothing

    # -- pictures ------------------------------------------------------------------------------
    def _draw_losses(self) -> None:
        self._last_redraw = time.perf_counter()
        fig = self.loss_figure
        fig.clear()
        ax = fig.add_subplot(1, 1, 1)
        if self.history.get("iteration"):
            plot_loss_curves(self.history, ax=ax, parts=LOSS_PARTS)
        else:
            ax.text(0.5, 0.5, "loss curves appear at the first log row", ha="center", va="center")
            ax.axis("off")
        ax.set_title("training loss by component")
        fig.tight_layout()
        self.loss_image.value = figure_png(fig)

    def _draw_samples(self) -> None:
        self._last_sample_iteration = self.trainer.iteration
        fig = self.samples_figure
        fig.clear()
        if not self.sample_images:
            return
        predictions = self.trainer.predict(self.sample_images, score_threshold=self.score_threshold)
        for i, (image, detections) in enumerate(zip(self.sample_images, predictions)):
            ax = fig.add_subplot(1, len(self.sample_images), i + 1)
            ax.imshow(draw_detections(image, detections.cpu()))
            ax.set_title(f"{len(detections)} found", fontsize=9)
            ax.axis("off")
        fig.suptitle(f"predictions at iteration {self.trainer.iteration}", fontsize=10)
        self.samples_image.value = figure_png(fig)
        self.sample_refreshes += 1


__all__ = ["TrainingMonitor"]
