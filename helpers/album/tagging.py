"""Tag a MyPhotoShare album: keywords into `album.ini` (searchable `tags`), XMP sidecars if asked.

    scan_album (pictures, safely) -> photo_cache.predict (only new or changed photos reach the
    predictor) -> plan_album (keywords by the predictor's own rule; cheap) -> apply_plan (atomic
    writes, backups);  untag_album removes exactly what was added.

The album code never sees a model, only a *predictor* (`predict`, `fingerprint`,
`select_keywords`; see `helpers.predict.prediction`). What is written where: `helpers.album.ini`
(album.ini and the keys this tool owns) and `helpers.album.xmp` (sidecars).

Which pictures: every picture with a section in album.ini whose file exists, *plus* every picture
file of the folder without a section (their sections are appended in name order). Sections for
absent files, non-pictures (videos) and names that leave the folder (`../x.jpg`, a symlink out of
the album) are reported and left untouched. Hidden files are ignored.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import time
from collections.abc import Callable, Mapping
from pathlib import Path

from helpers.album import ini as album_ini
from helpers.album import xmp
from helpers.album.files import AlbumError, IniFile, write_ini
from helpers.album.ini import (
    check_written,
    edit_ini,
    unified_diff,
    untag_ini_text,
)
from helpers.album.scan import AlbumScan, Skipped, caption_to_description, find_album_dirs, scan_album
from helpers.data import images
from helpers.predict import photo_cache
from helpers.wordnet.keywords import available_languages, top_k_keywords

# --------------------------------------------------------------------------------------------
# One album: plan (what would change) and apply
# --------------------------------------------------------------------------------------------

@dataclasses.dataclass
class AlbumResult:
    """What tagging (or untagging) one album folder did or would do.

    Attributes:
        keywords: picture name -> its keywords (`[]`: none above `min_proba`), without the ones
            in `rejected` (picture name -> keywords the user removed: never written again).
        descriptions: picture name -> caption written as description.
        skipped: pictures, sections and sidecars not tagged, with the reason.
        new_text: album.ini after tagging (None: not planned); `ini_changed`: it differs from the
            file as read; `diff`: the unified diff (computed when first asked: difflib took 7 s
            for an album of 1,600 pictures, more than tagging them); `remove_ini`: untagging
            leaves nothing of a file tag-album created: delete it.
        sidecars: the `helpers.album.xmp.SidecarPlan`s that change something.
        written, sidecars_written, backup_path: what this call wrote (album.ini.bak).
        error: why album.ini could not be planned or written, else None.
    """

    album_dir: Path
    ini_path: Path
    keywords: dict[str, list[str]] = dataclasses.field(default_factory=dict)
    rejected: dict[str, list[str]] = dataclasses.field(default_factory=dict)
    descriptions: dict[str, str] = dataclasses.field(default_factory=dict)
    skipped: list[Skipped] = dataclasses.field(default_factory=list)
    new_text: str | None = None
    remove_ini: bool = False
    sidecars: list[xmp.SidecarPlan] = dataclasses.field(default_factory=list)
    written: bool = False
    sidecars_written: int = 0
    backup_path: Path | None = None
    error: str | None = None
    _ini: IniFile | None = dataclasses.field(default=None, repr=False)
    _diff: str | None = dataclasses.field(default=None, repr=False)

    @property
    def ini_changed(self) -> bool:
        """album.ini is planned and differs from the file as read (or the file goes)."""
        if self.new_text is None:
            return False
        return self.remove_ini or self.new_text != (self._ini.text if self._ini is not None else "")

    @property
    def diff(self) -> str:
        """Unified diff of album.ini, as read -> as planned ("" when unchanged)."""
        if self._diff is None:
            self._diff = (unified_diff(self._ini.text if self._ini is not None else "",
                                       self.new_text, self.ini_path) if self.ini_changed else "")
        return self._diff

    @property
    def changed(self) -> bool:
        return self.ini_changed or any(plan.changed for plan in self.sidecars)

    @property
    def done(self) -> bool:
        """Something useful happened: pictures tagged and everything written or already current."""
        return self.error is None and bool(self.keywords or self.ini_changed or self.sidecars) and (
            self.written or not self.ini_changed)


def plan_album(
    scan: AlbumScan,
    predictions: Mapping[str, object],
    nb_keywords: int = 5,
    min_proba: float = 0.0,
    lang: str = "eng",
    captions: bool = False,
    merge_into_tags: bool = True,
    predictor=None,
    sidecars: Mapping[Path, xmp.SidecarPlan] | None = None,
    album_ini_output: bool = True,
) -> AlbumResult:
    """The new album.ini (and sidecars) of one album from predictions; writes nothing. Cheap
    (no model): the widget calls it on every slider move.

    Args:
        scan: from `scan_album`.
        predictions: picture name -> `helpers.predict.prediction.Prediction`; a missing name is reported.
        nb_keywords, min_proba, lang: keywords per picture (at most), confidence threshold in
            [0, 1], keyword language.
        captions: write the best caption as description where the picture has none.
        merge_into_tags: the tags route (`helpers.album.ini`): keywords into `tags`, which
            MyPhotoShare searches; False: into `auto_tags` only.
        predictor: whose `select_keywords` (the model's own rule) chooses the keywords; None:
            the plain top-k rule `helpers.wordnet.keywords.top_k_keywords`.
        sidecars: photo path -> its sidecar as read (`helpers.album.xmp.read_sidecars`): plan them too.
        album_ini_output: False leaves album.ini alone (sidecars only).
    """
    select = predictor.select_keywords if predictor is not None else top_k_keywords
    result = AlbumResult(scan.album_dir, scan.ini.path, skipped=list(scan.skipped),
                         error=scan.error, _ini=scan.ini)
    if scan.error:
        return result
    chosen: dict[str, list[tuple[str, str]]] = {}
    for name, path in scan.pictures.items():
        prediction = predictions.get(name)
        if prediction is None or getattr(prediction, "error", None):
            reason = "no prediction" if prediction is None else prediction.error
            result.skipped.append(Skipped(name, reason, path))
            continue
        triples = select(prediction.synset_probabilities, nb_keywords, min_proba, lang)
        chosen[name] = [(synset, album_ini.clean_keyword(word)) for synset, word, _ in triples]
        result.keywords[name] = [word for _, word in chosen[name]]
        if captions and prediction.captions:
            result.descriptions[name] = caption_to_description(prediction.captions[0][0])
    result.new_text = scan.ini.text
    if album_ini_output and result.keywords:
        try:
            edit = edit_ini(scan.ini.text, result.keywords, result.descriptions,
                            merge_into_tags, scan.ini.path)
            check_written(edit.text, edit, scan.ini.path)
        except AlbumError as error:
            result.error, result.new_text = str(error), None
            return result
        result.new_text = edit.text
        result.rejected = {name: words for name, words in edit.rejected.items() if words}
        for name, words in result.rejected.items():
            unwanted = {word.casefold() for word in words}
            result.keywords[name] = [w for w in result.keywords[name] if w.casefold() not in unwanted]
    for name, words in result.keywords.items() if sidecars is not None else ():
        plan = dataclasses.replace(sidecars[scan.pictures[name]])
        allowed = {word.casefold() for word in words}
        xmp.plan_keywords(plan, [(word, xmp.keyword_path(synset, word, lang))
                                 for synset, word in chosen[name] if word.casefold() in allowed])
        _add_sidecar(result, plan)
    return result


def _add_sidecar(result: AlbumResult, plan: xmp.SidecarPlan) -> None:
    if plan.error:
        result.skipped.append(Skipped(plan.path.name, f"XMP sidecar left alone: {plan.error}",
                                      plan.path))
    elif plan.changed:
        result.sidecars.append(plan)


def apply_plan(result: AlbumResult, session: xmp.ExifTool | None = None) -> AlbumResult:
    """Write album.ini as planned (or set `error`: read-only, changed since it was read...),
    then the sidecars with `session` (one that cannot be written goes to `skipped`)."""
    if result.error is None and result.ini_changed and result._ini:
        try:
            result.backup_path = write_ini(result._ini, None if result.remove_ini else result.new_text)
            result.written = True
        except AlbumError as error:
            result.error = str(error)
    for plan in result.sidecars if session is not None else ():
        try:
            xmp.apply_sidecar(session, plan)
            result.sidecars_written += 1
        except (AlbumError, OSError) as error:
            result.skipped.append(Skipped(plan.path.name, f"XMP sidecar not written: {error}",
                                          plan.path))
    return result


# --------------------------------------------------------------------------------------------
# Whole runs
# --------------------------------------------------------------------------------------------

@dataclasses.dataclass
class TaggingSummary:
    """Result of `tag_album` / `untag_album` over one album or a tree of albums; `predicted`
    photos went through the predictor, `captioned` ones were tagged before and only captioned
    (`helpers.predict.photo_cache.predict`), `cached` ones came from the prediction cache."""

    albums: list[AlbumResult]
    seconds: float
    update: bool
    predicted: int = 0
    cached: int = 0
    untag: bool = False
    captioned: int = 0

    @property
    def pictures_tagged(self) -> int:
        return sum(len(album.keywords) for album in self.albums if album.error is None)

    @property
    def skipped(self) -> list[Skipped]:
        return [item for album in self.albums for item in album.skipped]

    @property
    def files_written(self) -> list[Path]:
        return [album.ini_path for album in self.albums if album.written]

    @property
    def backups(self) -> list[Path]:
        return [album.backup_path for album in self.albums if album.backup_path]

    @property
    def errors(self) -> list[tuple[Path, str]]:
        return [(album.ini_path, album.error) for album in self.albums if album.error]

    @property
    def diff(self) -> str:
        """The album.ini diffs, then one line per sidecar change."""
        return "".join(album.diff for album in self.albums) + "".join(
            f"{plan.path.parent}{os.sep}{plan.describe()}\n" for album in self.albums
            for plan in album.sidecars)

    @property
    def anything_done(self) -> bool:
        """Tagged pictures and (when updating) wrote them or found them already current; for
        untagging, at least one album handled."""
        if self.untag:
            return any(album.error is None for album in self.albums)
        if self.update:
            return any(album.done for album in self.albums)
        return self.pictures_tagged > 0

    def report(self) -> str:
        """Multi-line report: skipped pictures with reasons, errors, then a one-line summary."""
        lines = [f"skipped {item.path or item.name}: {item.reason}" for item in self.skipped]
        lines += [f"error {path}: {error}" for path, error in self.errors]
        return "\n".join(lines + [str(self)])

    def __str__(self) -> str:
        verb = "wrote" if self.update else "would change"
        changed = self.files_written if self.update else [a.ini_path for a in self.albums if a.ini_changed]
        where = ", ".join(str(path) for path in changed) or "nothing"
        sidecars = sum(a.sidecars_written if self.update else len(a.sidecars) for a in self.albums)
        backups = f"; backup {', '.join(str(p) for p in self.backups)}" if self.backups else ""
        what = "untagged" if self.untag else (
            f"tagged {self.pictures_tagged} pictures ({self.predicted} predicted, "
            + (f"{self.captioned} captioned from their cached tags, " if self.captioned else "")
            + f"{self.cached} from the cache)")
        return (f"{what} in {len(self.albums)} album(s), skipped {len(self.skipped)}, "
                f"{len(self.errors)} album error(s); {verb} {where}"
                f"{f' and {sidecars} XMP sidecar(s)' if sidecars else ''}{backups} "
                f"({self.seconds:.1f} s)")


def check_options(album_dir=None, album_ini=None, recursive: bool = False, lang: str | None = None,
                  nb_keywords: int = 5, min_proba: float = 0.0, xmp_sidecars: bool = False,
                  sidecar_name: str = xmp.SIDECAR_NAMINGS[0]) -> tuple[Path, Path | None]:
    """Check a run's options before any model work; returns `(root folder, album.ini or None)`.

    Raises:
        ValueError: neither or both of `album_dir`/`album_ini`, `album_ini` with `recursive`, a
            folder that does not exist, `min_proba` outside [0, 1], a negative `nb_keywords`, a
            `lang` (when given) not installed or an unknown sidecar naming.
        helpers.album.xmp.ExifToolMissing: sidecars asked for without ExifTool.
    """
    if (album_dir is None) == (album_ini is None):
        raise ValueError("give exactly one of album_dir or album_ini")
    if album_ini is not None and recursive:
        raise ValueError("recursive needs album_dir (each folder has its own album.ini)")
    root = Path(album_dir) if album_ini is None else Path(album_ini).parent
    if not root.is_dir():
        raise ValueError(f"album folder {root} does not exist or is not a folder")
    if not 0.0 <= min_proba <= 1.0:
        raise ValueError(f"min_proba is a probability in [0, 1], got {min_proba}")
    if nb_keywords < 0:
        raise ValueError(f"nb_keywords must be >= 0, got {nb_keywords}")
    if lang is not None and lang not in available_languages():
        raise ValueError(f"keyword language {lang!r} is not installed; choose one of "
                         f"{', '.join(sorted(available_languages()))}")
    xmp.sidecar_path("photo.jpg", sidecar_name)   # ValueError for an unknown naming
    if xmp_sidecars:
        xmp.check_exiftool()
    return root.resolve(), None if album_ini is None else Path(album_ini)


def _scans(root: Path, ini_path: Path | None, recursive: bool) -> list[AlbumScan]:
    return [scan_album(folder, ini_path if folder == root else None, root)
            for folder in find_album_dirs(root, recursive)]


def _run_albums(scans: list[AlbumScan], root: Path, update: bool, echo, session,
                plan: Callable[[AlbumScan], AlbumResult]) -> list[AlbumResult]:
    """`plan` each album, preview (`echo`) or apply it; returns the results."""
    results = []
    for scan in scans:
        result = plan(scan)
        if echo is not None and not update:
            prefix = "" if scan.album_dir == root else f"{scan.album_dir.relative_to(root)}/"
            for line in [f"{name} --> {','.join(words)}" for name, words in result.keywords.items()
                         ] + [sidecar.describe() for sidecar in result.sidecars]:
                echo(prefix + line)
        if update:
            apply_plan(result, session)
        results.append(result)
    return results


def tag_album(
    predictor,
    album_dir: str | os.PathLike | None = None,
    album_ini: str | os.PathLike | None = None,
    lang: str = "eng",
    nb_keywords: int = 5,
    min_proba: float | None = None,
    captions: bool = False,
    merge_into_tags: bool = True,
    recursive: bool = False,
    update: bool = True,
    beam_width: int = 3,
    batch_size: int = 32,
    progress: bool = True,
    echo: Callable[[str], None] | None = print,
    xmp_sidecars: bool = False,
    sidecar_name: str = xmp.SIDECAR_NAMINGS[0],
    album_ini_output: bool = True,
    cache: photo_cache.PredictionCache | str | os.PathLike | None = None,
) -> TaggingSummary:
    """Caption and tag every picture of an album (or album tree); write album.ini and sidecars.

    Args:
        predictor: `predict`, `fingerprint`, `select_keywords` (see `helpers.predict.prediction`).
        album_dir: album folder, or `album_ini`: an album.ini file (its folder is the album).
        lang, nb_keywords, min_proba: keyword and caption language, keywords per picture (at
            most), confidence threshold in [0, 1] (None: the predictor's `default_min_proba`, 0
            for a trained run, 0.25 for the ImageNet hierarchy). With `captions`, a language the
            predictor writes captions in (`caption_languages`) but without a wordnet here
            (German) gets captions in it and English keywords (`keyword_language`, said once).
        captions: write the best caption as `description` where a picture has none (without it
            no caption is computed: no beam search).
        merge_into_tags, album_ini_output: as `plan_album`.
        recursive: every album folder under `album_dir` (one album.ini per folder).
        update: write; False only previews (`picture --> keywords`, sidecar changes to `echo`).
        beam_width, batch_size: beam width of the captions, photos per model batch.
        progress: a progress bar; echo: where preview lines go (None: silent).
        xmp_sidecars: also write XMP sidecars (`helpers.album.xmp`), named `sidecar_name`.
        cache: a `helpers.predict.photo_cache.PredictionCache`, its file path, or None (temporary).

    Returns:
        `TaggingSummary`.

    Raises:
        ValueError, helpers.album.xmp.ExifToolMissing: see `check_options` (before the model runs).
    """
    start = time.perf_counter()
    if min_proba is None:
        min_proba = predictor.default_min_proba
    keyword_lang = lang
    if captions and lang not in available_languages() and lang in getattr(predictor, "caption_languages", ()):
        keyword_lang = predictor.keyword_language(lang)     # German: English keywords (said once)
    root, ini_path = check_options(album_dir, album_ini, recursive, keyword_lang, nb_keywords, min_proba,
                                   xmp_sidecars, sidecar_name)
    scans = _scans(root, ini_path, recursive)
    paths = [path for scan in scans for path in scan.pictures.values()]
    with contextlib.ExitStack() as stack:
        store = stack.enter_context(photo_cache.open_cache(cache, predictor))
        predictions, counts = photo_cache.predict(predictor, paths, store, beam_width, 1,
                                                  batch_size, progress, captions, caption_lang=lang)
        session = stack.enter_context(xmp.ExifTool()) if xmp_sidecars else None

        def plan(scan: AlbumScan) -> AlbumResult:
            sidecars = (xmp.read_sidecars(session, scan.pictures.values(), sidecar_name)
                        if session is not None and not scan.error else None)
            return plan_album(scan, predictions.select(scan.pictures), nb_keywords, min_proba,
                              keyword_lang, captions, merge_into_tags, predictor, sidecars,
                              album_ini_output)

        results = _run_albums(scans, root, update, echo, session, plan)
    return TaggingSummary(results, time.perf_counter() - start, update, counts["predicted"],
                          counts["cached"], captioned=counts["captioned"])


def untag_album(album_dir: str | os.PathLike | None = None,
                album_ini: str | os.PathLike | None = None, recursive: bool = False,
                update: bool = True, xmp_sidecars: bool = False, album_ini_output: bool = True,
                echo: Callable[[str], None] | None = print) -> TaggingSummary:
    """Remove exactly what tag-album added, without any model: from album.ini
    (`helpers.album.ini.untag_ini_text`: tagging then untagging gives the original file back,
    byte for byte) and, with `xmp_sidecars`, from every picture's sidecar under either naming.

    Raises:
        ValueError, helpers.album.xmp.ExifToolMissing: see `check_options`.
    """
    start = time.perf_counter()
    root, ini_path = check_options(album_dir, album_ini, recursive, xmp_sidecars=xmp_sidecars)
    with contextlib.ExitStack() as stack:
        session = stack.enter_context(xmp.ExifTool()) if xmp_sidecars else None

        def plan(scan: AlbumScan) -> AlbumResult:
            result = AlbumResult(scan.album_dir, scan.ini.path, error=scan.error, _ini=scan.ini)
            if scan.error:
                return result
            if album_ini_output and scan.ini.exists:
                try:
                    new_text = untag_ini_text(scan.ini.text, scan.ini.path)
                except AlbumError as error:
                    result.error = str(error)
                    return result
                result.remove_ini, result.new_text = new_text is None, new_text or ""
            for naming in xmp.SIDECAR_NAMINGS if session is not None else ():
                for sidecar in xmp.read_sidecars(session, scan.pictures.values(), naming).values():
                    if sidecar.raw is not None:
                        _add_sidecar(result, xmp.plan_untag(sidecar))
            return result

        results = _run_albums(_scans(root, ini_path, recursive), root, update, echo, session, plan)
    return TaggingSummary(results, time.perf_counter() - start, update, untag=True)


def preview_items(result: AlbumResult, max_side: int = 200,
                  limit: int | None = None) -> list[tuple[object, str, str]]:
    """`(thumbnail uint8 [h, w, 3], name, "keywords\ncaption")` for the tagged pictures of
    `result`, then the skipped ones with their reason (for `helpers.plots.album_keywords_grid`).

    Args:
        result: from `plan_album` / `tag_album`.
        max_side: thumbnail size in pixels.
        limit: at most this many items (None: all).
    """
    import numpy as np

    items = []
    for name, words in result.keywords.items():
        text = ", ".join(words) or "(no keyword above the threshold)"
        if name in result.descriptions:
            text += "\n" + result.descriptions[name]
        items.append((result.album_dir / name, name, text))
    for item in result.skipped:
        if item.path is not None and item.path.exists() and images.is_image_file(item.path):
            items.append((item.path, item.name, "skipped: " + item.reason))
    previews = []
    for path, name, text in items[:limit]:
        try:
            pixels = images.load_thumbnail(path, max_side)
        except images.ImageLoadError:
            pixels = np.full((max_side * 3 // 4, max_side, 3), 235, np.uint8)  # grey placeholder
        previews.append((pixels, name, text))
    return previews

