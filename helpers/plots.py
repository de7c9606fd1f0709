"""Every figure the notebooks show. Each function takes data (and an optional matplotlib `ax`)
and returns the `matplotlib.figure.Figure`, so notebooks stay one line per plot and the demo can
save the same figures as PNG."""

from __future__ import annotations

import zlib

import matplotlib.pyplot as plt
import numpy as np

from helpers.data.images import ImageLoadError, load_thumbnail


def _axes(ax=None, figsize=(6, 4)):
    """Return `(figure, ax)`: the given axes, or a new figure with one axes."""
    if ax is None:
        figure, ax = plt.subplots(figsize=figsize)
        return figure, ax
    return ax.figure, ax


def album_keywords_grid(pictures, columns: int = 4, axes=None, title: str | None = None):
    """Thumbnails of an album with their keywords (and caption) underneath: a static preview.

    Args:
        pictures: sequence of `(pixels uint8 [h, w, 3], name, text)`; `text` may hold several
            lines (keywords, then the caption). `helpers.album.tagging.preview_items` builds it.
        columns: thumbnails per row.
        axes: optional array of at least `len(pictures)` matplotlib axes (else a new figure).
        title: optional figure title.

    Returns:
        The `matplotlib.figure.Figure`.
    """
    import textwrap

    pictures = list(pictures)
    count = max(1, len(pictures))
    if axes is None:
        rows = (count + columns - 1) // columns
        figure, axes = plt.subplots(rows, columns, figsize=(3.2 * columns, 4.0 * rows),
                                    squeeze=False)
    else:
        figure = np.asarray(axes).flat[0].figure
    axes = np.asarray(axes).ravel()
    for ax in axes[len(pictures):]:
        ax.axis("off")
    for ax, (pixels, name, text) in zip(axes, pictures):
        ax.imshow(pixels)
        wrapped = "\n".join(textwrap.fill(textwrap.shorten(line, 66, placeholder=" …"), 34)
                            for line in str(text).splitlines()[:3])  # at most 2 lines each
        ax.set_title(name, fontsize=9, fontweight="bold")
        # the text as the x label of an axes without ticks or frame: `tight_layout` makes room for
        # it (a free text under the axes overlapped the next row's title with 3 lines)
        ax.set_xticks([])
        ax.set_yticks([])
        for spine in ax.spines.values():
            spine.set_visible(False)
        ax.set_xlabel(wrapped, fontsize=8)
    if title:
        figure.suptitle(title)
        figure.tight_layout(rect=(0, 0, 1, 1 - 0.4 / figure.get_figheight()), h_pad=1.5)   # the title: 0.4 inch
    else:
        figure.tight_layout(h_pad=1.5)
    return figure


def plot_training_history(history, ax=None, metrics=("loss",)):
    """Training and validation curves per epoch.

    Args:
        history: `{name: [value per epoch]}` (Keras `History.history`, or a `history.csv`
            DataFrame); "val_<name>" is drawn beside "<name>".
        ax: matplotlib axes to draw into (None: a new figure).
        metrics: which curves, e.g. ("loss",) or ("caption_loss", "tags_loss").

    Returns:
        The `matplotlib.figure.Figure`.
    """
    figure, ax = _axes(ax, figsize=(6, 3.5))
    for name in metrics:
        for key, style in ((name, "-o"), (f"val_{name}", "--o")):
            values = list(history[key]) if key in history else []
            if values:
                ax.plot(range(1, len(values) + 1), values, style, markersize=3,
                        label=key.replace("val_", "validation ").replace("_", " "))
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss" if len(metrics) == 1 else "value")
    ax.grid(alpha=0.3)
    ax.legend()
    figure.tight_layout()
    return figure


def plot_image_grid(records, instances=None, columns: int = 4, max_images: int = 8,
                    max_captions: int = 2, axes=None, title: str | None = None):
    """Images of a caption dataset with their first captions and (optionally) object boxes.

    Args:
        records: `helpers.data.coco.ImageRecord`s (needs `path`, `image_id`, `file_name`, `captions`);
            the first `max_images` are drawn. Unreadable files show their error instead.
        instances: optional `{image_id: [(category name, [x, y, width, height]), ...]}` in image
            pixels, as returned by `helpers.data.coco.load_instance_boxes`.
        columns: images per row.
        max_images: how many records to draw.
        max_captions: captions printed under each image.
        axes: optional array of at least `max_images` matplotlib axes (else a new figure).
        title: optional figure title.

    Returns:
        The `matplotlib.figure.Figure`.
    """
    import textwrap

    from matplotlib.patches import Rectangle
    from PIL import Image, ImageOps

    records = list(records)[:max_images]
    count = max(1, len(records))
    columns = min(columns, count)
    if axes is None:
        rows = (count + columns - 1) // columns
        figure, axes = plt.subplots(rows, columns, squeeze=False,
                                    figsize=(3.4 * columns, (3.3 + 0.6 * max_captions) * rows))
    else:
        figure = np.asarray(axes).flat[0].figure
    axes = np.asarray(axes).ravel()
    for ax in axes:
        ax.axis("off")
    colours = plt.get_cmap("tab10")
    for ax, record in zip(axes, records):
        ax.set_title(f"{record.image_id} ({record.file_name})", fontsize=8)
        try:
            with Image.open(record.path) as image:
                ax.imshow(ImageOps.exif_transpose(image).convert("RGB"))
        except OSError as error:
            ax.text(0.5, 0.5, f"cannot read image:\n{error}", ha="center", va="center",
                    fontsize=7, wrap=True, transform=ax.transAxes)
        for number, (name, (x, y, width, height)) in enumerate((instances or {}).get(
                record.image_id, [])):
            colour = colours(number % 10)
            ax.add_patch(Rectangle((x, y), width, height, fill=False, edgecolor=colour,
                                   linewidth=1.5))
            ax.text(x, y, name, fontsize=7, color="white", va="bottom",
                    bbox={"facecolor": colour, "alpha": 0.8, "pad": 1, "linewidth": 0})
        captions = "\n".join(textwrap.fill(c, 38) for c in record.captions[:max_captions])
        ax.text(0.5, -0.03, captions, transform=ax.transAxes, ha="center", va="top", fontsize=7)
    if title:
        figure.suptitle(title)
    figure.tight_layout()
    return figure


def plot_predictions(predictions, images=None, columns: int = 4, max_captions: int = 3,
                     max_tags: int = 5, notes=None, axes=None, title: str | None = None):
    """Photos with their captions (with probabilities) and tags (with confidences) underneath.

    Args:
        predictions: `helpers.predict.prediction.Prediction`s (a failed one shows its error).
        images: optional pixels uint8 `[h, w, 3]` per prediction (default: read from
            `prediction.path` as a thumbnail).
        columns: photos per row.
        max_captions, max_tags: how many captions and tags to print per photo.
        notes: optional extra text per photo, printed last (e.g. a reference caption).
        axes: optional array of at least `len(predictions)` matplotlib axes (else a new figure).
        title: optional figure title.

    Returns:
        The `matplotlib.figure.Figure`.
    """
    import textwrap
    from pathlib import Path

    predictions = list(predictions)
    count = max(1, len(predictions))
    columns = max(1, min(columns, count))
    if axes is None:
        rows = (count + columns - 1) // columns
        figure, axes = plt.subplots(rows, columns, squeeze=False,
                                    figsize=(3.6 * columns,
                                             (3.6 + 0.3 * (2 * max_captions + 2 + 2 * bool(notes))) * rows))
    else:
        figure = np.asarray(axes).flat[0].figure
    axes = np.asarray(axes).ravel()
    for ax in axes:
        ax.axis("off")
    for index, (ax, prediction) in enumerate(zip(axes, predictions)):
        ax.set_title(Path(str(prediction.path)).name, fontsize=8)
        pixels = images[index] if images is not None else None
        if pixels is None:
            try:
                pixels = load_thumbnail(prediction.path, max_side=320)
            except (ImageLoadError, OSError):
                pixels = None
        if pixels is not None:
            ax.imshow(pixels)
        if prediction.error:
            ax.text(0.5, 0.5, textwrap.fill(f"cannot read: {prediction.error}", 34), ha="center",
                    va="center", fontsize=7, transform=ax.transAxes, color="darkred")
            continue
        lines = [textwrap.fill(f"{i}) {text} (p={np.exp(log_p):.2g})", 42)
                 for i, (text, log_p) in enumerate(prediction.captions[:max_captions])]
        if prediction.tags:
            lines.append(textwrap.fill("tags: " + ", ".join(
                f"{word} {p:.2f}" for _, word, p in prediction.tags[:max_tags]), 42))
        if notes is not None and notes[index]:
            lines.append(textwrap.fill(str(notes[index]), 42))
        ax.text(0.5, -0.03, "\n".join(lines), transform=ax.transAxes, ha="center", va="top", fontsize=7)
    if title:
        figure.suptitle(title)
    figure.tight_layout()
    return figure


def plot_attention(pixels, words, attention, grid_shape, columns: int = 5, axes=None,
                   title: str | None = None):
    """Where the attention decoder looked for each word ("Show, Attend and Tell", fig. 2 style).

    Args:
        pixels: the photo, uint8 `[h, w, 3]`.
        words: the generated words (one per attention row; add "<end>" for a finished caption).
        attention: float `[steps, L]` weights over the L = gh * gw grid cells (rows sum to 1),
            e.g. `Prediction.attention`; `steps` >= `len(words)`.
        grid_shape: `(gh, gw)` of the encoder grid (`Prediction.grid_shape`), row-major cells.
        columns: panels per row.
        axes: optional array of at least `len(words)` axes (else a new figure).
        title: optional figure title.

    Returns:
        The `matplotlib.figure.Figure`.
    """
    from PIL import Image

    words = list(words)
    attention = np.asarray(attention, dtype=np.float32)
    gh, gw = grid_shape
    if attention.ndim != 2 or attention.shape[1] != gh * gw or attention.shape[0] < len(words):
        raise ValueError(f"attention {attention.shape} must be [steps >= {len(words)}, {gh * gw}] "
                         f"for a {gh} x {gw} grid")
    pixels = np.asarray(pixels)
    height, width = pixels.shape[:2]
    count = max(1, len(words))
    columns = max(1, min(columns, count))
    if axes is None:
        rows = (count + columns - 1) // columns
        figure, axes = plt.subplots(rows, columns, squeeze=False, figsize=(2.6 * columns, 2.6 * rows))
    else:
        figure = np.asarray(axes).flat[0].figure
    axes = np.asarray(axes).ravel()
    for ax in axes:
        ax.axis("off")
    for ax, word, weights in zip(axes, words, attention):
        cells = weights.reshape(gh, gw) / max(float(weights.max()), 1e-12)        # (gh, gw) in [0, 1]
        heat = np.asarray(Image.fromarray((255 * cells).astype(np.uint8)).resize(
            (width, height), Image.Resampling.BILINEAR), dtype=np.float32) / 255.0  # (h, w)
        ax.imshow((pixels[..., :3] * (0.15 + 0.85 * heat[..., None])).astype(np.uint8))  # dim what it ignored
        ax.set_title(word, fontsize=10)
    if title:
        figure.suptitle(title)
    figure.tight_layout()
    return figure


DETECTION_COLOURS = tuple(index for index in range(20) if index not in (14, 15))   # "tab20" without its greys


def detection_colour(category: str) -> tuple[float, float, float, float]:
    """The RGBA colour (floats in [0, 1]) of a detection category's boxes: the same in every
    figure, photo and process (a checksum of the name, not Python's salted `hash`, picks one of
    matplotlib's "tab20" colours, its two greys left out)."""
    return plt.get_cmap("tab20")(DETECTION_COLOURS[zlib.crc32(category.encode("utf-8")) % len(DETECTION_COLOURS)])


def plot_detections(pixels, detections, *, min_score: float, ax=None, title: str | None = None):
    """A detector's boxes drawn over the photo it saw: one rectangle and label per detection.

    Each detection with score >= `min_score` is drawn as an unfilled rectangle in its category's
    colour (`detection_colour`: stable across photos) with the label "category 0.87" (score, two
    decimals) at its top-left corner, inside the photo. Boxes are drawn unclipped, in the axes'
    data coordinates = photo pixels: the photo is shown with `extent=(0, width, height, 0)`, so
    pixel `(row, column)` covers `[column, column + 1) x [row, row + 1)`, the coordinates the
    detector's boxes use, and a rectangle's `get_xy()`, `get_width()`, `get_height()` are the box's
    `x1, y1, x2 - x1, y2 - y1`.

    Args:
        pixels: uint8 `[height, width, 3]`, the full-size photo, upright by its EXIF orientation
            (`helpers.data.images.load_image(path)`): `Prediction.detections` boxes are in its
            pixels (found on a reduced decode, scaled back by `helpers.predict.fused`).
        detections: `(category, score in (0, 1], (x1, y1, x2, y2) in pixels)` tuples
            (`helpers.predict.prediction.Detection`, e.g. `Prediction.detections`).
        min_score: draw detections with score >= this (the keywords' threshold:
            `helpers.predict.prediction.DETECTION_MIN_SCORE`).
        ax: matplotlib axes to draw into (None: a new figure sized to the photo).
        title: optional axes title (e.g. the photo's name and `Prediction.counts()`).

    Returns:
        The `matplotlib.figure.Figure`.

    Raises:
        ValueError: `pixels` is not a `[height, width, 3]` photo.
    """
    from matplotlib.patches import Rectangle

    pixels = np.asarray(pixels)
    if pixels.ndim != 3 or pixels.shape[2] != 3 or 0 in pixels.shape:
        raise ValueError(f"pixels must be a [height, width, 3] photo (helpers.data.images.load_image), "
                         f"got shape {pixels.shape}")
    height, width = pixels.shape[:2]
    figure, ax = _axes(ax, figsize=(6.4, 6.4 * height / width + 0.4))   # inches
    ax.imshow(pixels, extent=(0, width, height, 0))
    line_width = max(1.5, width / 400)
    for category, score, (x1, y1, x2, y2) in detections:
        if score < min_score:
            continue
        colour = detection_colour(category)
        ax.add_patch(Rectangle((x1, y1), x2 - x1, y2 - y1, fill=False, edgecolor=colour, linewidth=line_width))
        luminance = 0.299 * colour[0] + 0.587 * colour[1] + 0.114 * colour[2]     # ITU-R BT.601
        ax.text(min(max(x1, 0), width), min(max(y1, 0), height), f"{category} {score:.2f}", fontsize=8,
                color="black" if luminance > 0.6 else "white", va="top", ha="left", clip_on=True,
                bbox={"facecolor": colour, "edgecolor": "none", "pad": 1.5, "alpha": 0.85})
    ax.set_xlim(0, width)
    ax.set_ylim(height, 0)
    ax.axis("off")
    if title:
        ax.set_title(title, fontsize=10)
    figure.tight_layout()
    return figure


def plot_confidence_histogram(confidences, ax=None, bins: int = 20,
                              label: str = "best caption, mean log-probability per token"):
    """Histogram of per-photo confidences (e.g. the best caption's mean log-probability per token).

    Args:
        confidences: float values, one per photo.
        ax: matplotlib axes (None: a new figure).
        bins: histogram bins.
        label: x-axis label.

    Returns:
        The `matplotlib.figure.Figure`.
    """
    figure, ax = _axes(ax, figsize=(6, 3))
    ax.hist(np.asarray(list(confidences), dtype=np.float64), bins=bins, color="tab:blue", alpha=0.8)
    ax.set_xlabel(label)
    ax.set_ylabel("photos")
    ax.grid(alpha=0.3)
    figure.tight_layout()
    return figure


# --- dataset exploration (notebook 0) --------------------------------------------------------
def plot_caption_lengths(lengths, ax=None, max_length: int | None = None,
                         title: str = "Caption lengths"):
    """Histogram of caption lengths in tokens.

    Args:
        lengths: int sequence, tokens per caption (`len(helpers.text.vocab.tokenize(caption))`).
        ax: optional matplotlib axes.
        max_length: optional cut-off to mark (e.g. `Config.max_caption_length - 2`, the words
            that fit between `<start>` and `<end>`), with the share of longer captions.
        title: axes title.
    """
    figure, ax = _axes(ax)
    lengths = np.asarray(list(lengths), dtype=int)
    if lengths.size:
        bins = np.arange(lengths.min(), lengths.max() + 2) - 0.5
        ax.hist(lengths, bins=bins, color="tab:blue", alpha=0.8)
        ax.axvline(lengths.mean(), color="black", linestyle=":",
                   label=f"mean {lengths.mean():.1f}")
    if max_length is not None and lengths.size:
        longer = float((lengths > max_length).mean())
        ax.axvline(max_length + 0.5, color="tab:red", linestyle="--",
                   label=f"cut at {max_length} ({longer:.1%} longer)")
    ax.set_xlabel("tokens per caption")
    ax.set_ylabel("captions")
    ax.set_title(title)
    if lengths.size:
        ax.legend()
    ax.grid(alpha=0.3)
    figure.tight_layout()
    return figure


def plot_top_words(counts, top: int = 25, ax=None, title: str = "Most frequent words",
                   xlabel: str = "occurrences", labels=None):
    """Horizontal bar chart of the most frequent items of a count mapping.

    Args:
        counts: `{item: count}` (a `collections.Counter` of words, synsets, ...).
        top: how many bars.
        ax: optional matplotlib axes.
        title, xlabel: texts.
        labels: optional `{item: label shown}` (e.g. synset -> "dog (dog.n.01)").
    """
    items = sorted(counts.items(), key=lambda item: (-item[1], item[0]))[:top]
    figure, ax = _axes(ax, figsize=(6, 0.25 * max(len(items), 4) + 1))
    names = [str((labels or {}).get(name, name)) for name, _ in items][::-1]
    values = [value for _, value in items][::-1]
    ax.barh(range(len(items)), values, color="tab:green", alpha=0.8)
    ax.set_yticks(range(len(items)), names, fontsize=8)
    ax.set_xlabel(xlabel)
    ax.set_title(title)
    ax.grid(axis="x", alpha=0.3)
    figure.tight_layout()
    return figure


def plot_vocabulary_coverage(curve, ax=None, chosen: int | None = None,
                             title: str = "Vocabulary size and coverage vs min_count"):
    """Vocabulary size (left axis, log scale) and token coverage (right axis) per threshold.

    Args:
        curve: `{"threshold": [...], "size": [...], "coverage": [...]}` from
            `helpers.text.vocab.threshold_curve` (coverage in [0, 1]).
        ax: optional matplotlib axes.
        chosen: optional threshold to mark (e.g. `Config.min_word_count`).
    """
    figure, ax = _axes(ax)
    thresholds = curve["threshold"]
    ax.plot(thresholds, curve["size"], "o-", color="tab:blue", label="vocabulary size")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("min_count (words seen fewer times become <unk>)")
    ax.set_ylabel("vocabulary size (ids)", color="tab:blue")
    right = ax.twinx()
    right.plot(thresholds, [100 * c for c in curve["coverage"]], "s-", color="tab:orange",
               label="token coverage")
    right.set_ylabel("tokens covered (%)", color="tab:orange")
    if chosen is not None:
        ax.axvline(chosen, color="gray", linestyle="--")
        if chosen in thresholds:
            i = thresholds.index(chosen)
            ax.annotate(f"{curve['size'][i]} ids, {curve['coverage'][i]:.1%}",
                        (chosen, curve["size"][i]), textcoords="offset points", xytext=(5, 5),
                        fontsize=8)
    ax.set_title(title)
    ax.grid(alpha=0.3, which="both")
    figure.tight_layout()
    return figure


def plot_objects_per_image(counts, ax=None, title: str = "Visual Genome objects per image"):
    """Histogram of objects per image (int sequence, e.g. `helpers.data.vgenome.object_counts`
    values)."""
    figure, ax = _axes(ax)
    counts = np.asarray(list(counts), dtype=int)
    if counts.size:
        ax.hist(counts, bins=min(50, max(1, counts.max() - counts.min() + 1)), color="tab:purple",
                alpha=0.8)
        ax.axvline(counts.mean(), color="black", linestyle=":", label=f"mean {counts.mean():.1f}")
        ax.legend()
    ax.set_xlabel("objects per image")
    ax.set_ylabel("images")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    figure.tight_layout()
    return figure


def plot_preprocessing(images, preprocessed, titles=None, axes=None):
    """Photos before and after the encoder's preprocessing, one column per photo.

    Args:
        images: uint8 `[N, H, W, 3]` photos as loaded.
        preprocessed: float `[N, H, W, 3]` what the backbone receives (any range: each image is
            rescaled to [0, 1] for display, and its value range is printed under it).
        titles: optional caption per photo.
        axes: optional 2 x N array of matplotlib axes.

    Returns:
        The `matplotlib.figure.Figure`.
    """
    images, preprocessed = np.asarray(images), np.asarray(preprocessed, dtype=np.float32)
    count = len(images)
    if axes is None:
        figure, axes = plt.subplots(2, count, figsize=(2.2 * count, 4.6), squeeze=False)
    else:
        figure = np.asarray(axes).flat[0].figure
    for column in range(count):
        top, bottom = axes[0][column], axes[1][column]
        top.imshow(images[column])
        top.set_title(titles[column] if titles else "as loaded", fontsize=8)
        values = preprocessed[column]
        low, high = float(values.min()), float(values.max())
        bottom.imshow((values - low) / max(high - low, 1e-6))
        bottom.set_title(f"model input [{low:.2f}, {high:.2f}]", fontsize=8)
        for ax in (top, bottom):
            ax.axis("off")
    figure.tight_layout()
    return figure
