"""The batch driver every predictor shares: decode photos in threads, run the model a batch at a
time, report unreadable photos, show progress.

    photos (paths or uint8 arrays)
        -> `helpers.data.images.load_images` (decoded in threads, up to two batches ahead)
        -> `run_batch(items)`: starts the model on one batch, returns how to finish it
        -> one `Prediction` per photo, in input order (a photo that cannot be read gets `error`)

`run_batch` may hand its work to another thread and return a function that waits for it: the
driver finishes batch k only after it has started batch k + 1, so a caption decoder can run on
batch k while the encoder works on batch k + 1 (TensorFlow releases the GIL).
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from helpers.data import images as image_io
from helpers.predict.prediction import Prediction

Finish = Callable[[], list[Prediction]]
"""Completes a started batch: one `Prediction` per item, in order (their `path` is set by the driver)."""


@functools.cache
def _blas_controller():
    import threadpoolctl

    return threadpoolctl.ThreadpoolController()


@contextlib.contextmanager
def one_blas_thread():
    """NumPy's BLAS (OpenBLAS) on one thread inside the block (threadpoolctl), as it was after.

    Tagging's NumPy products are small (the ImageNet hierarchy's `[B, 1000] x [1000, S]`), and
    OpenBLAS's worker threads spin for about 0.1 s after each call, taking a core from the
    TensorFlow work that follows. Measured on 2 cores (AMD EPYC), the 14 photos of
    examples/album: their caption beam search took 126 ms right after a tagging batch, 79 ms
    without one before it, 89 ms with one BLAS thread. (Around the caption search's own NumPy,
    the consensus neighbours, it made no difference beyond the noise: not used there.)
    """
    with _blas_controller().limit(limits=1, user_api="blas"):
        yield


def pixels_of_array(array, size: int, crop: str | None = None) -> np.ndarray:
    """An in-memory image as uint8 `[size, size, 3]`, resized (or centre-cropped) as
    `helpers.data.images.load_image` does for files.

    Raises:
        ValueError: not a uint8 `[H, W]` / `[H, W, 1|3|4]` array.
    """
    from PIL import Image

    image = Image.fromarray(rgb_of_array(array))
    if crop == "center":
        box = image_io.center_crop_box(*image.size, size=size)
        image = image.crop(box).resize((size, size), Image.Resampling.BICUBIC)
    elif image.size != (size, size):
        image = image.resize((size, size), image_io.RESAMPLE)
    return np.asarray(image, dtype=np.uint8)


def rgb_of_array(array) -> np.ndarray:
    """An in-memory image as uint8 RGB `[H, W, 3]` (grey and RGBA converted as Pillow does).

    Raises:
        ValueError: not a uint8 `[H, W]` / `[H, W, 1|3|4]` array.
    """
    from PIL import Image

    array = np.asarray(array)
    if array.dtype != np.uint8:
        raise ValueError(f"in-memory images must be uint8 arrays, got {array.dtype}")
    if not (array.ndim == 2 or (array.ndim == 3 and array.shape[-1] in (1, 3, 4))):
        raise ValueError(f"in-memory images must be [height, width] or [height, width, 1|3|4], got {array.shape}")
    if array.ndim == 3 and array.shape[-1] == 3:
        return array
    image = Image.fromarray(array[..., 0] if array.ndim == 3 and array.shape[-1] == 1 else array)
    return np.asarray(image.convert("RGB"), dtype=np.uint8)


def photo_names(images: Sequence) -> list[str]:
    """The `Prediction.path` of each input: the path, or `"<array i>"` for an in-memory image."""
    return [str(item) if not isinstance(item, np.ndarray) else f"<array {i}>" for i, item in enumerate(images)]


def predict_in_batches(images: Iterable, run_batch: Callable[[list], Finish], *,
                       load: Callable[[Path], object], from_array: Callable[[np.ndarray], object],
                       batch_size: int = 32, workers: int | None = None, progress: bool = True,
                       description: str = "predicting") -> list[Prediction]:
    """Run a model over photos a batch at a time; the one loop of every predictor.

    Args:
        images: photo paths (str / Path) and/or uint8 arrays `[H, W, 3]`, in any mix.
        run_batch: given the decoded items of one batch (at most `batch_size`), starts the model
            on them and returns a function that finishes the batch (see `Finish`).
        load: decodes one photo file into the model's input; raises
            `helpers.data.images.ImageLoadError` for a file that cannot be read.
        from_array: the same for an in-memory image; raises ValueError for a bad array.
        batch_size: photos per model batch (>= 1).
        workers: photo-decoding threads (default `helpers.data.images.default_workers()`).
        progress: show a progress bar; description: its label.

    Returns:
        One `Prediction` per input, in order; a photo that cannot be read comes back with
        `error` set (the reason), the others are not affected.

    Raises:
        ValueError: `batch_size` < 1.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    images = list(images)
    names = photo_names(images)
    predictions: list[Prediction | None] = [None] * len(images)
    paths = [item for item in images if not isinstance(item, np.ndarray)]
    decoded = image_io.load_images(paths, workers=workers, prefetch=max(2 * batch_size, 1), loader=load)
    pending: list[tuple[int, object]] = []
    started: list[tuple[list[int], Finish]] = []      # at most one batch whose model work runs

    def finish_started(bar) -> None:
        if started:
            indices, finish = started.pop()
            for index, prediction in zip(indices, finish()):
                prediction.path = names[index]
                predictions[index] = prediction
            bar.update(len(indices))

    def start(bar) -> None:
        finish = run_batch([item for _, item in pending])
        indices = [index for index, _ in pending]
        pending.clear()
        finish_started(bar)
        started.append((indices, finish))

    try:
        with one_blas_thread(), tqdm(total=len(images), desc=description, unit="photo", disable=not progress) as bar:
            for index, item in enumerate(images):
                if isinstance(item, np.ndarray):
                    try:
                        item = from_array(item)
                    except ValueError as error:
                        item = image_io.ImageLoadError(names[index], str(error))
                else:
                    _, item = next(decoded)
                if isinstance(item, image_io.ImageLoadError):
                    predictions[index] = Prediction(path=names[index], error=item.reason)
                    bar.update(1)
                    continue
                pending.append((index, item))
                if len(pending) == batch_size:
                    start(bar)
            if pending:
                start(bar)
            finish_started(bar)
    finally:
        decoded.close()
    return predictions  # type: ignore[return-value]
