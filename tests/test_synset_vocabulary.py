"""helpers.wordnet.synset_vocabulary: order, encode/decode, save/load of the tag vocabulary."""

from __future__ import annotations

import json

import numpy as np
import pytest

from helpers.wordnet.synset_vocabulary import SynsetVocabulary


def test_synset_vocabulary_order_encode_decode(tmp_path):
    per_image = [{"dog.n.01", "sofa.n.01"}, {"dog.n.01"}, {"cat.n.01", "sofa.n.01"}, {"cat.n.01"},
                 {"lamp.n.02"}]
    vocabulary = SynsetVocabulary.build(per_image, min_images=2)
    assert vocabulary.names == ["cat.n.01", "dog.n.01", "sofa.n.01"]   # count desc, then name
    assert len(vocabulary) == 3 and vocabulary.index("dog.n.01") == 1
    assert "lamp.n.02" not in vocabulary
    with pytest.raises(KeyError, match="lamp"):
        vocabulary.index("lamp.n.02")
    target = vocabulary.encode({"sofa.n.01", "dog.n.01", "lamp.n.02"})
    assert target.dtype == np.float32 and target.tolist() == [0.0, 1.0, 1.0]
    batch = vocabulary.encode_batch(per_image)
    assert batch.shape == (5, 3) and batch.dtype == np.float32 and batch.sum() == 6
    assert vocabulary.decode([0.2, 0.9, 0.5]) == [("dog.n.01", 0.9), ("sofa.n.01", 0.5),
                                                   ("cat.n.01", pytest.approx(0.2))]
    assert vocabulary.decode(np.array([0.2, 0.9, 0.5]), top_k=1) == [("dog.n.01", 0.9)]
    assert [n for n, _ in vocabulary.decode([0.2, 0.9, 0.5], min_proba=0.4)] == ["dog.n.01",
                                                                                 "sofa.n.01"]
    with pytest.raises(ValueError, match="shape"):
        vocabulary.decode(np.zeros((2, 3)))
    path = vocabulary.save(tmp_path / "synsets.json")
    loaded = SynsetVocabulary.load(path)
    assert loaded == vocabulary and loaded.image_counts == {"cat.n.01": 2, "dog.n.01": 2,
                                                            "sofa.n.01": 2}
    assert loaded.min_images == 2 and loaded.num_images == 5
    data = json.loads(path.read_text(encoding="utf-8"))
    data["format_version"] = 99
    path.write_text(json.dumps(data), encoding="utf-8")
    with pytest.raises(ValueError, match="version"):
        SynsetVocabulary.load(path)
    with pytest.raises(ValueError, match="min_images"):
        SynsetVocabulary.build(per_image, min_images=0)


# A synsets.json exactly as `SynsetVocabulary.save` has written it since format version 1.
SAVED_V1 = ('{"format": "helpers.synsets.SynsetVocabulary", "format_version": 1, "min_images": 2, '
            '"hypernym_depth": 1, "num_images": 5, "names": ["dog.n.01", "cat.n.01"], "image_counts": [3, 2]}\n')


def test_file_saved_by_earlier_code_loads_and_saves_the_same(tmp_path):
    path = tmp_path / "synsets.json"
    path.write_text(SAVED_V1, encoding="utf-8")
    loaded = SynsetVocabulary.load(path)
    assert loaded.names == ["dog.n.01", "cat.n.01"] and loaded.index("cat.n.01") == 1
    assert loaded.image_counts == {"dog.n.01": 3, "cat.n.01": 2}
    assert (loaded.min_images, loaded.hypernym_depth, loaded.num_images) == (2, 1, 5)
    assert loaded.to_dict() == json.loads(SAVED_V1)
    assert loaded.save(tmp_path / "again.json").read_text(encoding="utf-8") == SAVED_V1
    assert len(loaded) == 2 and "dog.n.01" in loaded and loaded == SynsetVocabulary(["dog.n.01", "cat.n.01"])
    with pytest.raises(ValueError, match="repeated"):
        SynsetVocabulary(["dog.n.01", "dog.n.01"])
    (tmp_path / "vocabulary.json").write_text('{"format": "helpers.vocab.Vocabulary", "format_version": 1}')
    with pytest.raises(ValueError, match="not a saved SynsetVocabulary"):
        SynsetVocabulary.load(tmp_path / "vocabulary.json")
