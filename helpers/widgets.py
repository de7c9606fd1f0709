"""An ipywidgets panel to tag a MyPhotoShare album interactively (notebook 4).

The model runs **once** per album (`AlbumTaggingPanel.load`): the per-photo synset probabilities
and captions are cached, so moving the confidence slider, the keyword-count slider or the language
dropdown only re-filters and re-translates (milliseconds) and the thumbnails' keywords and the
album.ini diff update immediately. "Write album.ini" writes exactly the diff shown
(`helpers.album.tagging.apply_plan`: in place, atomic, with album.ini.bak; sidecars with the XMP box).
Keywords go into `tags` by default (MyPhotoShare searches it); keywords the user removed from
`tags` are shown greyed and never added again.

Everything the browser shows is also reachable from Python (`set`, `keywords`, `label_text`,
`diff`, `write`), so the panel is tested without a browser (tests/test_widgets.py).
"""

from __future__ import annotations

import html
import io
import os
from pathlib import Path

import ipywidgets
from PIL import Image

from helpers.album import tagging as album
from helpers.data import images
from helpers.predict import photo_cache
from helpers.wordnet import keywords


def language_options(default: str = "eng") -> list[tuple[str, str]]:
    """Dropdown options `("French (fra)", "fra")` for every keyword language, sorted by name.

    Uses `helpers.wordnet.keywords.available_languages()`; `default` is always included.
    """
    names = dict(keywords.available_languages())
    names.setdefault(default, default)
    return sorted(((f"{name} ({code})", code) for code, name in names.items()),
                  key=lambda option: option[0].casefold())


def _jpeg_bytes(pixels) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "JPEG", quality=85)
    return buffer.getvalue()


class AlbumTaggingPanel:
    """Preview and write an album's keywords with live controls.

    Args:
        captioner: the predictor (`predict`, `select_keywords`; a `helpers.predict.predictors.Captioner`
            or the ImageNet tagger): keywords are chosen by its own `select_keywords` rule.
        album_dir: album folder (its album.ini is edited).
        lang: initial keyword language code.
        min_proba: initial confidence threshold in [0, 1].
        nb_keywords: initial number of keywords per photo.
        captions: initially write captions as descriptions (where there is none).
        merge_into_tags: initially write the keywords into `tags`, which MyPhotoShare searches
            (the default, as `tag-album`; keywords the user removed from `tags` are shown greyed
            and never added again); False: `auto_tags` only.
        beam_width: beam width of the captions.
        thumbnail_side: thumbnail size in pixels (longest side).
        columns: thumbnails per row.
        load: run the model on the album now (else call `load()`).
        xmp: initially also write XMP sidecars (needs ExifTool), named `sidecar_name`.
        cache: a `helpers.predict.photo_cache.PredictionCache` (or its file path): only photos it lacks
            are predicted; None: predict every photo once per `load`.

    Attributes:
        widget: the `ipywidgets.VBox` to display (the panel also displays itself).
        result: the current `helpers.album.tagging.AlbumResult` (what "Write" would write).
    """

    def __init__(self, captioner, album_dir: str | os.PathLike, lang: str = "eng",
                 min_proba: float = 0.0, nb_keywords: int = 5, captions: bool = False,
                 merge_into_tags: bool = True, beam_width: int = 3, thumbnail_side: int = 160,
                 columns: int = 4, load: bool = True, xmp: bool = False,
                 sidecar_name: str = album.xmp.SIDECAR_NAMINGS[0], cache=None):
        self.captioner = captioner
        self.beam_width = beam_width
        self.thumbnail_side = thumbnail_side
        self.sidecar_name = sidecar_name
        self.cache = (cache if cache is None or isinstance(cache, photo_cache.PredictionCache)
                      else photo_cache.PredictionCache(cache))
        self._predictions: dict[str, object] = {}
        self._labels: dict[str, ipywidgets.HTML] = {}
        self._session = None            # ExifTool, started when the XMP box is first ticked
        self._sidecars = None           # photo path -> helpers.album.xmp.SidecarPlan as read
        self.scan: album.AlbumScan | None = None
        self.result: album.AlbumResult | None = None

        labelled = {"style": {"description_width": "initial"}}   # labels shown in full
        self.folder = ipywidgets.Text(value=str(album_dir), description="Album folder",
                                      layout=ipywidgets.Layout(width="60%"), **labelled)
        self.load_button = ipywidgets.Button(description="Tag photos", icon="tags")
        self.language = ipywidgets.Dropdown(options=language_options(lang), value=lang,
                                            description="Language", **labelled)
        self.min_proba = ipywidgets.FloatSlider(value=min_proba, min=0.0, max=1.0, step=0.01,
                                                description="Confidence ≥", readout_format=".2f",
                                                **labelled)
        self.nb_keywords = ipywidgets.IntSlider(value=nb_keywords, min=1, max=15,
                                                description="Keywords", **labelled)
        self.captions = ipywidgets.Checkbox(value=captions, description="captions → description")
        self.merge_into_tags = ipywidgets.Checkbox(
            value=merge_into_tags, description="keywords → tags (searched by MyPhotoShare)",
            **labelled)
        self.xmp = ipywidgets.Checkbox(value=xmp, description=f"XMP sidecars ({sidecar_name})",
                                       **labelled)
        self.write_button = ipywidgets.Button(description="Write album.ini", icon="save",
                                              button_style="warning", disabled=True)
        self.status = ipywidgets.HTML()
        self.grid = ipywidgets.GridBox(layout=ipywidgets.Layout(
            grid_template_columns=f"repeat({columns}, {thumbnail_side + 24}px)"))
        self.diff_view = ipywidgets.HTML()
        for control in (self.language, self.min_proba, self.nb_keywords, self.captions,
                        self.merge_into_tags, self.xmp):
            control.observe(lambda change: self.refresh(), names="value")
        self.load_button.on_click(lambda _: self.load())
        self.write_button.on_click(lambda _: self.write())
        self.widget = ipywidgets.VBox([
            ipywidgets.HBox([self.folder, self.load_button]),
            ipywidgets.HBox([self.language, self.nb_keywords]),
            ipywidgets.HBox([self.min_proba, self.captions]),
            ipywidgets.HBox([self.merge_into_tags, self.xmp]),
            ipywidgets.HTML("<small>Greyed: keywords you removed from <code>tags</code>; they "
                            "are never added again.</small>"),
            self.grid,
            ipywidgets.HTML("<b>Changes to album.ini (and sidecars)</b>"),
            self.diff_view,
            ipywidgets.HBox([self.write_button, self.status]),
        ])
        if load:
            self.load()

    # -- model (once) ---------------------------------------------------------------------------
    def load(self, album_dir: str | os.PathLike | None = None) -> None:
        """Scan the album folder, run the model once on its pictures, build the thumbnails."""
        if album_dir is not None:
            self.folder.value = str(album_dir)
        folder = Path(self.folder.value).expanduser()
        if not folder.is_dir():
            self.status.value = f"<b>{html.escape(str(folder))}</b> is not a folder"
            return
        self.scan = album.scan_album(folder)
        self._sidecars = None
        names = list(self.scan.pictures)
        predictions = photo_cache.predict_list(
            self.captioner, [self.scan.pictures[name] for name in names],
            beam_width=self.beam_width, top_n=1, progress=True, cache=self.cache)
        self._predictions = dict(zip(names, predictions))
        self._captions: dict[str, dict] = {}      # caption language -> picture -> captions
        cells, self._labels = [], {}
        for name in names:
            label = ipywidgets.HTML(layout=ipywidgets.Layout(width=f"{self.thumbnail_side + 20}px"))
            try:
                pixels = images.load_thumbnail(self.scan.pictures[name], self.thumbnail_side)
                picture = ipywidgets.Image(value=_jpeg_bytes(pixels), format="jpeg")
            except images.ImageLoadError:
                picture = ipywidgets.HTML("<div style='height:80px'>⚠ unreadable</div>")
            self._labels[name] = label
            cells.append(ipywidgets.VBox([picture, label]))
        self.grid.children = cells
        self.refresh()

    def _read_sidecars(self):
        """The sidecars as on disk (read once per scan; ExifTool started on first use)."""
        if self._sidecars is None:
            if self._session is None:
                self._session = album.xmp.ExifTool()
            self._sidecars = album.xmp.read_sidecars(self._session, self.scan.pictures.values(),
                                                     self.sidecar_name)
        return self._sidecars

    def _caption_language(self, lang: str) -> None:
        """Captions in `lang` when the model has a caption decoder per language
        (`ConceptCaptioner`): written once per language from the cached concepts (no photo is
        read again), so the language control switches captions with the keywords."""
        if not hasattr(self.captioner, "caption_concepts") or not self.captions.value:
            return
        bundle = self.captioner.decoder_for(lang)
        key = bundle.vocabulary.language
        if key not in self._captions:
            readable = [(name, p) for name, p in self._predictions.items() if p.ok]
            concept_sets = [self.captioner.concepts(p) for _, p in readable]
            beams = self.captioner.caption_concepts(concept_sets, self.beam_width, 1, lang)
            self._captions[key] = {name: captions for (name, _), captions
                                   in zip(readable, self.captioner.caption_texts(concept_sets, beams, lang))}
        for name, captions in self._captions[key].items():
            self._predictions[name].captions = captions

    # -- cheap updates ----------------------------------------------------------------------------
    def refresh(self) -> None:
        """Re-filter and re-translate the cached predictions; update labels, diff and status."""
        if self.scan is None:
            return
        self._caption_language(self.language.value)
        sidecars, problem = None, None
        if self.xmp.value:
            try:
                sidecars = self._read_sidecars()
            except album.xmp.ExifToolMissing as error:
                problem = str(error)
        self.result = album.plan_album(
            self.scan, self._predictions, self.nb_keywords.value, self.min_proba.value,
            self.language.value, self.captions.value, self.merge_into_tags.value,
            predictor=self.captioner, sidecars=sidecars)
        reasons = {item.name: item.reason for item in self.result.skipped}
        for name, label in self._labels.items():
            title = f"<b>{html.escape(name)}</b><br>"
            if name in self.result.keywords:
                words = self.result.keywords[name] or ["(none above the threshold)"]
                text = ", ".join(html.escape(word) for word in words)
                rejected = self.result.rejected.get(name, [])
                if rejected:
                    text += "<br>" + ", ".join(
                        f"<span style='color:#999;text-decoration:line-through' title='removed "
                        f"by you: never added again'>{html.escape(word)}</span>" for word in rejected)
                caption = self.result.descriptions.get(name)
                if caption is None and self._predictions[name].captions:
                    caption = album.caption_to_description(self._predictions[name].captions[0][0])
                label.value = title + text + (f"<br><i>{html.escape(caption)}</i>" if caption else "")
            else:
                label.value = title + f"⚠ {html.escape(reasons.get(name, 'not tagged'))}"
        sidecar_lines = "".join(plan.describe() + "\n" for plan in self.result.sidecars)
        self.diff_view.value = (
            f"<pre style='font-size:11px;max-height:300px;overflow:auto'>"
            f"{html.escape(self.result.diff + sidecar_lines) or 'no change'}</pre>")
        self.write_button.description = "Write album.ini" + (" + sidecars" if self.xmp.value else "")
        self.write_button.disabled = not (self.result.changed and self.result.error is None)
        problems = len(self.result.skipped)
        error = self.result.error or problem
        self.status.value = (f"{len(self.result.keywords)} photos tagged, {problems} skipped"
                             + (f" — <b>{html.escape(error)}</b>" if error else ""))

    def set(self, **values) -> None:
        """Set controls by name, as a user would (`lang`, `min_proba`, `nb_keywords`, `captions`,
        `merge_into_tags`, `xmp`); the preview updates at once.

        Raises:
            ValueError: an unknown control name.
        """
        controls = {"lang": self.language, "min_proba": self.min_proba,
                    "nb_keywords": self.nb_keywords, "captions": self.captions,
                    "merge_into_tags": self.merge_into_tags, "xmp": self.xmp}
        unknown = sorted(set(values) - set(controls))
        if unknown:
            raise ValueError(f"unknown controls {unknown}; known: {sorted(controls)}")
        for name, value in values.items():
            controls[name].value = value

    def keywords(self) -> dict[str, list[str]]:
        """Picture name -> keywords currently shown (and written by `write`)."""
        return dict(self.result.keywords) if self.result else {}

    def rejected(self) -> dict[str, list[str]]:
        """Picture name -> keywords the user removed from `tags` (shown greyed, never written)."""
        return dict(self.result.rejected) if self.result else {}

    def label_text(self, name: str) -> str:
        """The text shown under a thumbnail (HTML tags removed)."""
        import re

        return html.unescape(re.sub(r"<br>", "\n", re.sub(r"<(?!br>)[^>]+>", "",
                                                           self._labels[name].value)))

    @property
    def predictions(self) -> dict[str, object]:
        """Picture name -> the cached `helpers.predict.prediction.Prediction` (the model ran once)."""
        return dict(self._predictions)

    @property
    def diff(self) -> str:
        """Unified diff of album.ini that `write` would apply ("" when nothing changes)."""
        return self.result.diff if self.result else ""

    def write(self) -> album.AlbumResult:
        """Write album.ini (and the sidecars) as previewed (atomic, with backups); then re-read
        them so the preview shows no pending change. Returns the `AlbumResult` (its `error` says
        why album.ini was not written; sidecars not written are in its `skipped`)."""
        result = album.apply_plan(self.result, self._session if self.xmp.value else None)
        if result.written or result.sidecars_written:
            message = (f"wrote {result.ini_path if result.written else ''}"
                       + (f" (previous version in {result.backup_path.name})"
                          if result.backup_path else "")
                       + (f", {result.sidecars_written} XMP sidecar(s)"
                          if result.sidecars_written else ""))
        else:
            message = f"not written: {result.error or 'no change'}"
        self.scan = album.scan_album(self.scan.album_dir)
        self._sidecars = None
        self.refresh()
        self.status.value = html.escape(message)
        return result

    def _ipython_display_(self):
        from IPython.display import display

        display(self.widget)
