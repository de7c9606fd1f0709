"""Predictions cached per photo and per model: a re-run decodes only new or changed photos.

**Where.** One SQLite file, by default `$XDG_CACHE_HOME/tag-album/predictions.sqlite`
(`~/.cache/tag-album/predictions.sqlite`): never inside an album. `tag-album --cache PATH` puts it
elsewhere (e.g. one hidden file at the top of the album tree), `--no-cache` uses a temporary one
for the run. Deleting it is always safe: the next run predicts again.

**Key.** The model's fingerprint (`model_fingerprint`: `predictor.fingerprint`, which changes with
the model, or the part of the model a run uses: keywords of the pretrained tagger are the tagger's
whether or not it has caption decoders) and the photo's absolute path; an entry is valid while the
photo's size and modification time (ns) are unchanged. So an unchanged re-run reads no photo, a
photo added or changed is predicted again, a new model predicts everything again (its own entries;
the old model's stay until the file is deleted), and changing the language, threshold or number of
keywords needs no prediction at all: every synset probability is kept.

**Value.** Every synset probability (float32 when that is exact, else float64; the synset names
are stored once per list), the captions with the settings they were made with (`beam_width`,
`top_n`: a run asking for other settings predicts again) or the reason the photo is unreadable.
About 4 bytes per synset per photo (8 kB per photo for 2,000 synsets).

Predicting goes in chunks of `CHUNK_PHOTOS` photos written to the cache as they come, and
`CachedPredictions` reads them back one at a time, so memory does not grow with the album.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import tempfile
import time
import warnings
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

import numpy as np

from helpers.predict.prediction import Prediction

SCHEMA_VERSION = "2"      # 2: detections; a cache of another version is emptied
CHUNK_PHOTOS = 256       # photos per predictor call: bounds the predictions held in memory
_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS synset_lists (id INTEGER PRIMARY KEY, names TEXT UNIQUE NOT NULL);
CREATE TABLE IF NOT EXISTS predictions (
    model TEXT NOT NULL, path TEXT NOT NULL, size INTEGER NOT NULL, mtime_ns INTEGER NOT NULL,
    synsets INTEGER, dtype TEXT, probabilities BLOB, captions TEXT, caption_settings TEXT,
    error TEXT, detections TEXT, PRIMARY KEY (model, path));
"""


def default_cache_path() -> Path:
    """`$XDG_CACHE_HOME/tag-album/predictions.sqlite` (`~/.cache/...` when unset)."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "tag-album" / "predictions.sqlite"


def model_fingerprint(predictor, captions: bool = False, lang: str = "eng") -> str:
    """What the cache keys one run's predictions on: `predictor.fingerprint_for(captions, lang)`
    for a predictor whose runs use different parts of it
    (`helpers.predict.concept_captions.ConceptCaptioner`: keywords need the tagger alone, captions
    also the decoder of their language), else `predictor.fingerprint`. "" for an unsaved model."""
    for_run = getattr(predictor, "fingerprint_for", None)
    return predictor.fingerprint if for_run is None else for_run(captions, lang)


def caption_settings(captions: bool, beam_width: int, top_n: int, lang: str = "eng") -> str | None:
    """What the cached captions must have been made with (None: captions not needed); the
    language only when it is not English (so English entries cached earlier stay valid)."""
    if not captions:
        return None
    return f"beam_width={beam_width};top_n={top_n}" + ("" if lang == "eng" else f";lang={lang}")


class PredictionCache:
    """The SQLite cache (see the module docstring).

    Args:
        path: the cache file (its folder is created); None: a temporary file deleted by `close`.
            A file that cannot be opened as a cache (unwritable, not SQLite) gives a warning and
            a temporary cache: the run goes on, only slower.
    """

    def __init__(self, path: str | os.PathLike | None = None):
        self._temporary: tempfile.TemporaryDirectory | None = None
        self.path = None if path is None else Path(path).expanduser()
        try:
            self._connection = self._open(self.path)
        except (sqlite3.Error, OSError) as error:
            warnings.warn(f"prediction cache {self.path} is unusable ({error}); using a temporary "
                          "one for this run (delete the file to start a new cache)", stacklevel=2)
            self._connection = self._open(None)
        self._synset_lists: dict[int, list[str]] = {}
        self._synset_ids: dict[tuple[str, ...], int] = {}

    def _open(self, path: Path | None) -> sqlite3.Connection:
        if path is None:
            self._temporary = tempfile.TemporaryDirectory(prefix="tag-album-cache-")
            path = self.path = Path(self._temporary.name) / "predictions.sqlite"
        path.parent.mkdir(parents=True, exist_ok=True)
        connection = sqlite3.connect(path, timeout=30)
        connection.executescript(_SCHEMA)
        row = connection.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone()
        if row is None or row[0] != SCHEMA_VERSION:
            connection.executescript("DROP TABLE predictions; DROP TABLE synset_lists;" + _SCHEMA)
            connection.execute("INSERT OR REPLACE INTO meta VALUES ('schema', ?)", (SCHEMA_VERSION,))
            connection.commit()
        return connection

    @property
    def temporary(self) -> bool:
        return self._temporary is not None

    def close(self) -> None:
        self._connection.close()
        if self._temporary is not None:
            self._temporary.cleanup()

    def __enter__(self) -> PredictionCache:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- one photo ----------------------------------------------------------------------------
    def has(self, model: str, path: Path, settings: str | None = None) -> bool:
        """`lookup(...) is not None`, without decoding the probabilities."""
        try:
            stat = os.stat(path)
        except OSError:
            return False
        row = self._connection.execute(
            "SELECT size, mtime_ns, caption_settings, error FROM predictions WHERE model = ? "
            "AND path = ?", (model, str(path))).fetchone()
        return row is not None and (row[0], row[1]) == (stat.st_size, stat.st_mtime_ns) and (
            row[3] is not None or settings is None or row[2] == settings)

    def lookup(self, model: str, path: Path, settings: str | None = None) -> Prediction | None:
        """The cached prediction of `path` by `model`, if the photo is unchanged (and, with
        `settings`, its captions were made with them); else None."""
        try:
            stat = os.stat(path)
        except OSError:
            return None
        row = self._connection.execute(
            "SELECT size, mtime_ns, synsets, dtype, probabilities, captions, caption_settings, "
            "error, detections FROM predictions WHERE model = ? AND path = ?", (model, str(path))).fetchone()
        if row is None or (row[0], row[1]) != (stat.st_size, stat.st_mtime_ns):
            return None
        _, _, synsets, dtype, blob, captions, stored_settings, error, detections = row
        if error is not None:
            return Prediction(str(path), error=error)
        if settings is not None and stored_settings != settings:
            return None
        values = np.frombuffer(blob, dtype=dtype).tolist()
        return Prediction(str(path),
                          captions=[tuple(item) for item in json.loads(captions or "[]")],
                          synset_probabilities=dict(zip(self._names(synsets), values)),
                          detections=[(category, score, tuple(box))
                                      for category, score, box in json.loads(detections or "[]")])

    def store(self, model: str, path: Path, stat: os.stat_result, prediction: Prediction,
              settings: str | None) -> None:
        """Keep `prediction` of `path` (as it was when `stat` was taken); `commit` saves."""
        names, blob, dtype, synsets = (), None, None, None
        if prediction.error is None:
            names = tuple(prediction.synset_probabilities)
            values = np.fromiter(prediction.synset_probabilities.values(), np.float64, len(names))
            single = values.astype(np.float32)
            exact = np.array_equal(single.astype(np.float64), values)
            blob, dtype = (single.tobytes(), "float32") if exact else (values.tobytes(), "float64")
            synsets = self._synset_id(names)
        captions = json.dumps([[text, float(score)] for text, score in prediction.captions],
                              ensure_ascii=False) if prediction.captions else None
        detections = json.dumps([[category, score, list(box)] for category, score, box in prediction.detections]
                                ) if prediction.detections else None
        self._connection.execute(
            "INSERT OR REPLACE INTO predictions VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (model, str(path), stat.st_size, stat.st_mtime_ns, synsets, dtype, blob, captions,
             settings if prediction.captions else None, prediction.error, detections))

    def commit(self) -> None:
        self._connection.commit()

    def _synset_id(self, names: tuple[str, ...]) -> int:
        if names not in self._synset_ids:
            text = json.dumps(names)
            self._connection.execute("INSERT OR IGNORE INTO synset_lists (names) VALUES (?)", (text,))
            (identifier,) = self._connection.execute(
                "SELECT id FROM synset_lists WHERE names = ?", (text,)).fetchone()
            self._synset_ids[names] = identifier
            self._synset_lists[identifier] = list(names)
        return self._synset_ids[names]

    def _names(self, identifier: int) -> list[str]:
        if identifier not in self._synset_lists:
            (text,) = self._connection.execute(
                "SELECT names FROM synset_lists WHERE id = ?", (identifier,)).fetchone()
            self._synset_lists[identifier] = json.loads(text)
        return self._synset_lists[identifier]


class CachedPredictions(Mapping):
    """Read-only mapping key -> `Prediction`, read from the cache when asked (one at a time).

    Args:
        cache, model, settings: as `PredictionCache.lookup`.
        paths: key (a picture name, a path...) -> the photo's path.
    """

    def __init__(self, cache: PredictionCache, model: str, paths: Mapping, settings: str | None):
        self.cache, self.model, self.paths, self.settings = cache, model, dict(paths), settings

    def __getitem__(self, key) -> Prediction:
        prediction = self.cache.lookup(self.model, self.paths[key], self.settings)
        if prediction is None:
            raise KeyError(key)
        return prediction

    def __iter__(self) -> Iterator:
        return iter(self.paths)

    def __len__(self) -> int:
        return len(self.paths)

    def select(self, paths: Mapping) -> CachedPredictions:
        """The same cache seen through other keys (`{name: path}`)."""
        return CachedPredictions(self.cache, self.model, paths, self.settings)


def predict(
    predictor,
    paths: Sequence[Path],
    cache: PredictionCache,
    beam_width: int = 3,
    top_n: int = 1,
    batch_size: int = 32,
    progress: bool = True,
    captions: bool = False,
    chunk_photos: int = CHUNK_PHOTOS,
    caption_lang: str = "eng",
) -> tuple[CachedPredictions, dict]:
    """Predict the photos the cache lacks, in chunks, storing each chunk as it comes.

    Args:
        predictor: has `predict(paths, beam_width=, top_n=, nb_keywords=, min_proba=, lang=,
            batch_size=, progress=, captions=)` and `fingerprint` (see `helpers.predict.prediction`);
            may have `fingerprint_for` (`model_fingerprint`) and `add_captions(predictions,
            beam_width=, top_n=, lang=)`, which captions tagged photos from their predictions
            (`ConceptCaptioner.add_captions`).
        paths: photo files (absolute paths are keys).
        cache: where predictions are kept; a predictor with an empty fingerprint (a model never
            saved) cannot be recognised later: give it a temporary cache.
        beam_width, top_n, captions: caption settings (no captions: tags only, no beam search).
        caption_lang: the captions' language (a predictor with decoders in several languages,
            `helpers.predict.concept_captions.ConceptCaptioner`; keywords are chosen later, in any
            language, from the cached probabilities).
        batch_size: photos per model batch; progress: a progress bar.
        chunk_photos: photos per predictor call.

    Returns:
        `(predictions, counts)`: a `CachedPredictions` keyed by path, and
        `{"predicted": n, "captioned": c, "cached": m, "seconds": s}`: n photos went through the
        predictor, c were tagged before and only captioned now (`add_captions`), m were cached.
    """
    start = time.perf_counter()
    model = model_fingerprint(predictor, captions, caption_lang)
    # a run with captions also keeps its predictions for keywords alone (the same tagger's)
    keywords_model = model_fingerprint(predictor) if captions else model
    settings = caption_settings(captions, beam_width, top_n, caption_lang)
    missing: list[tuple[Path, os.stat_result | None]] = []
    for path in paths:
        if not cache.has(model, path, settings):
            try:
                missing.append((path, os.stat(path)))
            except OSError:
                missing.append((path, None))
    bar = None
    if progress and len(missing) > chunk_photos:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(missing), desc="predicting", unit="photo")
    # captions of photos already tagged (a keywords run, captions in another language) need only
    # the decoder: a predictor that can caption tagged photos (`add_captions`) is not asked to
    # tag them again
    add_captions = getattr(predictor, "add_captions", None) if keywords_model != model else None
    captioned = 0
    for first in range(0, len(missing), chunk_photos):
        chunk = missing[first:first + chunk_photos]
        tagged = {} if add_captions is None else {
            path: found for path, _ in chunk if (found := cache.lookup(keywords_model, path)) is not None}
        untagged = [path for path, _ in chunk if path not in tagged]
        fresh = iter(predictor.predict(
            untagged, beam_width=beam_width, top_n=top_n, nb_keywords=0, min_proba=0.0,
            lang=caption_lang if captions else "eng", batch_size=batch_size,
            progress=progress and bar is None, captions=captions) if untagged else [])
        if tagged:
            add_captions(list(tagged.values()), beam_width=beam_width, top_n=top_n, lang=caption_lang)
            captioned += len(tagged)
        predictions = [tagged[path] if path in tagged else next(fresh) for path, _ in chunk]
        for (path, stat), prediction in zip(chunk, predictions):
            # an unreadable photo's reason is kept too (a re-run does not decode it again),
            # unless it may be a permission problem the user will fix
            if stat is not None and (prediction.error is None or os.access(path, os.R_OK)):
                cache.store(model, path, stat, prediction, settings)
                if keywords_model != model and path not in tagged:
                    cache.store(keywords_model, path, stat, prediction, None)
        cache.commit()
        if bar is not None:
            bar.update(len(chunk))
    if bar is not None:
        bar.close()
    counts = {"predicted": len(missing) - captioned, "captioned": captioned, "cached": len(paths) - len(missing),
              "seconds": time.perf_counter() - start}
    return CachedPredictions(cache, model, {path: path for path in paths}, settings), counts


@contextlib.contextmanager
def open_cache(cache, predictor) -> Iterator[PredictionCache]:
    """The cache for one run: `cache` itself (a `PredictionCache`), one at the path `cache`, or a
    temporary one (`cache` None, or a predictor without fingerprint: a model never saved)."""
    if isinstance(cache, PredictionCache):
        yield cache
        return
    with PredictionCache(cache if model_fingerprint(predictor) else None) as opened:
        yield opened


def predict_list(predictor, paths: Sequence[Path], beam_width: int = 3, batch_size: int = 32,
                 top_n: int = 1, progress: bool = True, captions: bool = True,
                 cache: PredictionCache | None = None) -> list[Prediction]:
    """One `Prediction` per path, in order (failed photos carry `.error`): straight from the
    predictor, or with `cache` only for the photos it lacks. Without `captions` only the
    encoder and tag classifier run (no beam search)."""
    if not paths:
        return []
    if cache is None:
        return predictor.predict(list(paths), beam_width=beam_width, top_n=top_n, nb_keywords=0,
                                 min_proba=0.0, lang="eng", batch_size=batch_size,
                                 progress=progress, captions=captions)
    cached, _ = predict(predictor, list(paths), cache, beam_width, top_n, batch_size, progress,
                        captions)
    return [cached[path] for path in paths]
