"""The figures of `helpers.plots`: the detector's boxes drawn over real photos of `examples/album`,
with the detections of the real `--model pretrained` predictor (YOLOX-Nano + EfficientNet-Lite0)."""

from __future__ import annotations

import os
from pathlib import Path

import matplotlib
import numpy as np
import pytest
from matplotlib.patches import Rectangle

from helpers import plots
from helpers.predict.prediction import DETECTION_MIN_SCORE

matplotlib.use("Agg")   # no display: figures are drawn in memory

ALBUM = Path(__file__).resolve().parents[1] / "examples" / "album"
needs_detector = pytest.mark.skipif(not os.environ.get("PHOTO_CAPTIONS_DETECTOR"),
                                    reason="no detector file (../shared/models/yolox-nano)")


@pytest.fixture(scope="module")
def predictions() -> dict:
    """`--model pretrained` predictions of three album photos, by file name: a cat with a weaker
    "dog" under the threshold, five musicians with a chair and a laptop, and a 1024 x 680 JPEG the
    detector sees decoded at half scale (512 x 340)."""
    from helpers.predict.predictors import load_predictor

    photos = [ALBUM / name for name in ("cat.jpg", "folk_musicians_on_stage.jpg", "mariachi_band.jpg")]
    found = load_predictor(model="pretrained").predict(photos, progress=False)
    return {Path(prediction.path).name: prediction for prediction in found}


def _drawn(figure) -> tuple[list[Rectangle], list[str]]:
    ax = figure.axes[0]
    return [patch for patch in ax.patches if isinstance(patch, Rectangle)], [text.get_text() for text in ax.texts]


@needs_detector
@pytest.mark.parametrize("name", ["cat.jpg", "folk_musicians_on_stage.jpg", "mariachi_band.jpg"])
def test_each_detection_above_the_threshold_is_one_rectangle_on_its_box(predictions, name):
    from helpers.data.images import load_image

    prediction = predictions[name]
    pixels = load_image(ALBUM / name)             # full size: the boxes' pixels
    figure = plots.plot_detections(pixels, prediction.detections, min_score=DETECTION_MIN_SCORE, title=name)
    rectangles, labels = _drawn(figure)
    kept = [d for d in prediction.detections if d[1] >= DETECTION_MIN_SCORE]
    assert len(rectangles) == len(kept) == sum(prediction.counts().values()) > 0
    for rectangle, (category, _, (x1, y1, x2, y2)) in zip(rectangles, kept):
        assert rectangle.get_xy() == pytest.approx((x1, y1))                       # photo pixels
        assert (rectangle.get_width(), rectangle.get_height()) == pytest.approx((x2 - x1, y2 - y1))
        assert rectangle.get_edgecolor() == pytest.approx(plots.detection_colour(category))
        assert not rectangle.get_fill()
    assert labels == [f"{category} {score:.2f}" for category, score, _ in kept]
    # The photo fills the axes pixel for pixel, so the boxes line up with what the detector saw.
    height, width = pixels.shape[:2]
    assert figure.axes[0].images[0].get_extent() == [0, width, height, 0]
    assert figure.axes[0].get_xlim() == (0, width) and figure.axes[0].get_ylim() == (height, 0)
    assert all(-0.05 * width < x1 < x2 < 1.05 * width and -0.05 * height < y1 < y2 < 1.05 * height
               for _, _, (x1, y1, x2, y2) in kept)
    matplotlib.pyplot.close(figure)


@needs_detector
def test_the_threshold_decides_what_is_drawn_and_colours_follow_categories(predictions):
    from helpers.data.images import load_image

    cat = predictions["cat.jpg"]
    assert [(c, s >= DETECTION_MIN_SCORE) for c, s, _ in cat.detections] == [("cat", True), ("dog", False)]
    figure = plots.plot_detections(load_image(ALBUM / "cat.jpg"), cat.detections, min_score=0.0)
    assert _drawn(figure)[1] == [f"{c} {s:.2f}" for c, s, _ in cat.detections]  # "dog 0.25" too
    matplotlib.pyplot.close(figure)

    folk = predictions["folk_musicians_on_stage.jpg"]
    figure, ax = matplotlib.pyplot.subplots()
    assert plots.plot_detections(load_image(ALBUM / "folk_musicians_on_stage.jpg"), folk.detections,
                                 min_score=DETECTION_MIN_SCORE, ax=ax) is figure
    colours = {}
    for rectangle, (category, _, _) in zip(_drawn(figure)[0], folk.detections):
        colours.setdefault(category, set()).add(tuple(rectangle.get_edgecolor()))
    assert set(colours) == {"person", "chair", "laptop"}
    assert all(len(seen) == 1 for seen in colours.values())                # one colour per category
    assert len(set.union(*colours.values())) == 3                          # and distinct ones here
    matplotlib.pyplot.close(figure)


def test_a_colour_per_category_is_stable_and_bad_pixels_are_refused():
    assert plots.detection_colour("person") == plots.detection_colour("person") != plots.detection_colour("chair")
    assert len(plots.detection_colour("person")) == 4
    with pytest.raises(ValueError, match="load_image"):
        plots.plot_detections(np.zeros((10, 10), np.uint8), [], min_score=DETECTION_MIN_SCORE)


def test_the_album_grid_title_sits_above_every_thumbnail_title():
    from helpers.data import images

    pictures = [(images.load_thumbnail(ALBUM / name, 160), name, "Un chat\nchat")
                for name in ("cat.jpg", "cameraman.jpg", "astronaut.jpg", "coffee.jpg", "nuthatch.jpg")]
    figure = plots.album_keywords_grid(pictures, columns=4, title="captions and keywords in fra")
    renderer = figure.canvas.get_renderer()
    suptitle = figure._suptitle.get_window_extent(renderer)
    tops = [ax.title.get_window_extent(renderer).y1 for ax in figure.axes if ax.get_title()]
    assert len(tops) == 5 and suptitle.y0 >= max(tops)      # no overlap (the cameraman's did)
    assert suptitle.y1 <= figure.bbox.y1                    # and inside the figure


def test_a_long_caption_stays_above_the_next_rows_titles():
    """Three lines of caption and keywords under a tall portrait thumbnail ran into the title of
    the photo below it (docs/real_album.jpg: the cameraman's keywords over "didgeridoo_player.jpg")."""
    from helpers.data import images

    text = "Une personne avec un t-shirt rouge et un jean est assise sur un trottoir\ntripode, personne"
    names = ("astronaut.jpg", "autumn_mountains.jpg", "cameraman.jpg", "cat.jpg", "didgeridoo_player.jpg",
             "dogs_at_door.jpg")
    pictures = [(images.load_thumbnail(ALBUM / name, 320), name, text) for name in names]
    figure = plots.album_keywords_grid(pictures, columns=4, title="captions and keywords in fra")
    renderer = figure.canvas.get_renderer()
    first_row, second_row = figure.axes[:4], figure.axes[4:6]
    lowest_text = min(ax.xaxis.label.get_window_extent(renderer).y0 for ax in first_row)
    highest_title = max(ax.title.get_window_extent(renderer).y1 for ax in second_row)
    assert lowest_text > highest_title
    assert all(ax.xaxis.label.get_text().startswith("Une personne") for ax in figure.axes[:6])
