"""Tests for helpers/predict/photo_cache.py: predictions kept per photo and model, exactly; only new or
changed photos (or a new model) reach the predictor; chunks bound the memory.

The predictor here is a small stand-in with the predictor protocol that counts the photos it is
given (the cache never looks inside a model); tests/test_album.py runs the real Captioner
through the cache."""

from __future__ import annotations

import hashlib
import os
import sqlite3

import numpy as np
import pytest

from helpers.predict import photo_cache
from helpers.predict.prediction import Prediction

SYNSETS = ["dog.n.01", "cat.n.01", "tree.n.01", "car.n.01"]


class HashPredictor:
    """Probabilities from the photo's bytes (a changed photo gets new ones); records its calls."""

    def __init__(self, fingerprint="model-a", exact32=True):
        self.fingerprint, self.exact32, self.calls = fingerprint, exact32, []

    def predict(self, paths, beam_width=3, top_n=1, nb_keywords=0, min_proba=0.0, lang="eng",
                batch_size=32, progress=True, captions=True):
        self.calls.append(list(paths))
        predictions = []
        for path in paths:
            data = path.read_bytes()
            if not data:
                predictions.append(Prediction(str(path), error="empty file"))
                continue
            seed = int(hashlib.sha256(data).hexdigest()[:8], 16)
            values = np.random.default_rng(seed).random(len(SYNSETS))
            values = values.astype(np.float32).astype(float) if self.exact32 else values
            predictions.append(Prediction(
                str(path), synset_probabilities=dict(zip(SYNSETS, map(float, values))),
                captions=[(f"a photo {beam_width}", -1.25)] if captions else []))
        return predictions

    @property
    def predicted(self) -> int:
        return sum(len(call) for call in self.calls)


@pytest.fixture()
def photos(tmp_path):
    folder = tmp_path / "album"
    folder.mkdir()
    paths = []
    for index in range(5):
        path = folder / f"IMG_{index}.jpg"
        path.write_bytes(b"photo %d" % index)
        paths.append(path)
    (folder / "empty.jpg").write_bytes(b"")
    return paths + [folder / "empty.jpg"]


def test_rerun_predicts_only_new_or_changed_photos(tmp_path, photos):
    predictor = HashPredictor()
    with photo_cache.PredictionCache(tmp_path / "cache.sqlite") as cache:
        first, counts = photo_cache.predict(predictor, photos, cache, progress=False)
        assert counts["predicted"] == 6 and counts["cached"] == 0
        fresh = {path: first[path] for path in photos}
    # Another process, the same file: nothing predicted, everything exactly as before.
    with photo_cache.PredictionCache(tmp_path / "cache.sqlite") as cache:
        again, counts = photo_cache.predict(predictor, photos, cache, progress=False)
        assert counts == {**counts, "predicted": 0, "cached": 6} and predictor.predicted == 6
        for path in photos:
            assert again[path].synset_probabilities == fresh[path].synset_probabilities
            assert again[path].error == fresh[path].error
        assert again[photos[-1]].error == "empty file"  # unreadable photos are not retried
        # One photo changed, one added: only those two.
        photos[1].write_bytes(b"edited")
        added = photos[0].with_name("new.jpg")
        added.write_bytes(b"new photo")
        later, counts = photo_cache.predict(predictor, photos + [added], cache, progress=False)
        assert predictor.calls[-1] == [photos[1], added] and counts["cached"] == 5
        assert later[photos[1]].synset_probabilities != fresh[photos[1]].synset_probabilities
        # A new model: everything again, under its own key.
        other = HashPredictor("model-b")
        photo_cache.predict(other, photos, cache, progress=False)
        assert other.predicted == len(photos)


def test_values_and_captions_are_exact(tmp_path, photos):
    for exact32 in (True, False):   # float32 when exact, else float64
        predictor = HashPredictor(exact32=exact32)
        with photo_cache.PredictionCache(tmp_path / f"c{exact32}.sqlite") as cache:
            expected = predictor.predict(photos[:2], captions=True)
            cached, _ = photo_cache.predict(predictor, photos[:2], cache, captions=True,
                                            progress=False)
            for prediction in expected:
                got = cached[photos[expected.index(prediction)]]
                assert got.synset_probabilities == prediction.synset_probabilities
                assert got.captions == prediction.captions == [("a photo 3", -1.25)]


def test_captions_with_other_settings_are_predicted_again(tmp_path, photos):
    predictor = HashPredictor()
    with photo_cache.PredictionCache(tmp_path / "cache.sqlite") as cache:
        photo_cache.predict(predictor, photos[:2], cache, captions=False, progress=False)
        photo_cache.predict(predictor, photos[:2], cache, captions=False, progress=False)
        assert predictor.predicted == 2
        photo_cache.predict(predictor, photos[:2], cache, captions=True, beam_width=3,
                            progress=False)
        photo_cache.predict(predictor, photos[:2], cache, captions=False, progress=False)
        assert predictor.predicted == 4   # tags-only runs reuse captioned entries
        cached, _ = photo_cache.predict(predictor, photos[:2], cache, captions=True,
                                        beam_width=5, progress=False)
        assert predictor.predicted == 6 and cached[photos[0]].captions[0][0] == "a photo 5"


class PartsPredictor(HashPredictor):
    """A predictor whose runs use different parts of it, as `ConceptCaptioner`'s do: keywords
    are the tagger's, captions also need the decoder of their language (`fingerprint_for`)."""

    def __init__(self):
        super().__init__("tagger")
        self.decoders = {"eng": "eng-decoder-1", "fra": "fra-decoder-1"}
        self.captioned = []

    def fingerprint_for(self, captions, lang="eng"):
        return f"tagger+{self.decoders.get(lang, self.decoders['eng'])}" if captions else "tagger"

    def add_captions(self, predictions, beam_width=3, top_n=1, lang="eng"):
        self.captioned.append([p.path for p in predictions])
        for prediction in predictions:
            if prediction.ok:
                prediction.captions = [(f"{lang} {beam_width}", -0.5)]
        return predictions


def test_runs_are_keyed_by_the_parts_of_the_model_they_use(tmp_path, photos):
    predictor = PartsPredictor()
    with photo_cache.PredictionCache(tmp_path / "cache.sqlite") as cache:
        french, counts = photo_cache.predict(predictor, photos, cache, captions=True, caption_lang="fra",
                                             progress=False)
        assert counts["predicted"] == 6 and french[photos[0]].captions == [("a photo 3", -1.25)]
        # keywords alone after captions: that run kept them
        keywords, counts = photo_cache.predict(predictor, photos, cache, progress=False)
        assert counts["predicted"] == 0 and predictor.predicted == 6
        assert keywords[photos[0]].synset_probabilities == french[photos[0]].synset_probabilities
        # the English decoder retrained: French captions and keywords stay, English captions are
        # written from the cached tags, the tagger not asked again
        predictor.decoders["eng"] = "eng-decoder-2"
        for lang, captions in (("fra", True), ("eng", False)):
            assert photo_cache.predict(predictor, photos, cache, captions=captions, caption_lang=lang,
                                       progress=False)[1]["predicted"] == 0
        english, counts = photo_cache.predict(predictor, photos, cache, captions=True, caption_lang="eng",
                                              progress=False)
        assert (counts["predicted"], counts["captioned"], counts["cached"]) == (0, 6, 0)
        assert predictor.predicted == 6 and len(predictor.captioned[-1]) == 6
        assert english[photos[0]].captions == [("eng 3", -0.5)] and english[photos[-1]].error == "empty file"
        assert english[photos[0]].synset_probabilities == french[photos[0]].synset_probabilities
        assert photo_cache.predict(predictor, photos, cache, captions=True, caption_lang="eng",
                                   progress=False)[1]["cached"] == 6
        assert photo_cache.model_fingerprint(HashPredictor("m"), True, "fra") == "m"   # one fingerprint


def test_chunks_bound_each_predictor_call(tmp_path, photos):
    predictor = HashPredictor()
    with photo_cache.PredictionCache(None) as cache:
        cached, _ = photo_cache.predict(predictor, photos, cache, chunk_photos=2, progress=False)
        assert [len(call) for call in predictor.calls] == [2, 2, 2]
        assert len(cached) == 6 and set(cached) == set(photos)
        temporary = cache.path
        assert cache.temporary and temporary.is_file()
    assert not temporary.exists()   # a temporary cache goes with the run


def test_default_location_and_an_unusable_cache_file(tmp_path, monkeypatch, photos):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert photo_cache.default_cache_path() == tmp_path / "xdg" / "tag-album" / "predictions.sqlite"
    broken = tmp_path / "broken.sqlite"
    broken.write_bytes(b"this is not a database" * 100)
    with pytest.warns(UserWarning, match="unusable"):
        cache = photo_cache.PredictionCache(broken)
    with cache:
        assert cache.temporary
        _, counts = photo_cache.predict(HashPredictor(), photos, cache, progress=False)
        assert counts["predicted"] == 6
    assert broken.read_bytes() == b"this is not a database" * 100   # never overwritten


def test_an_old_schema_is_emptied(tmp_path, photos):
    path = tmp_path / "cache.sqlite"
    with photo_cache.PredictionCache(path) as cache:
        photo_cache.predict(HashPredictor(), photos, cache, progress=False)
    with sqlite3.connect(path) as connection:
        connection.execute("UPDATE meta SET value = '0' WHERE key = 'schema'")
    predictor = HashPredictor()
    with photo_cache.PredictionCache(path) as cache:
        photo_cache.predict(predictor, photos, cache, progress=False)
    assert predictor.predicted == 6


def test_a_photo_touched_is_predicted_again(tmp_path, photos):
    predictor = HashPredictor()
    with photo_cache.PredictionCache(tmp_path / "cache.sqlite") as cache:
        photo_cache.predict(predictor, photos, cache, progress=False)
        stat = os.stat(photos[2])
        os.utime(photos[2], ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))
        photo_cache.predict(predictor, photos, cache, progress=False)
        assert predictor.calls[-1] == [photos[2]]
