"""helpers.training.pipelines: the tf.data chains (caption batches from the feature cache)."""

from __future__ import annotations

import collections
import itertools
import json

import numpy as np
import pytest
import tensorflow as tf

from helpers.text.vocab import PAD_ID, START_ID, Vocabulary
from helpers.training import features, pipelines
from helpers.wordnet.synset_vocabulary import SynsetVocabulary

Record = collections.namedtuple("Record", "image_id captions")   # the fields caption_dataset reads

WORDS = ["a", "red", "green", "circle", "square", "left", "of", "the", "big", "small", "on", "top"]
SYNSETS = ["circle.n.01", "square.n.01", "red.n.01", "green.n.01"]
POOLED_DIM, GRID_CELLS, FEATURE_DIM = 6, 4, 3


def test_caption_dataset_batches_are_bucketed_and_shifted(prepared):
    dataset = pipelines.caption_dataset(prepared.train_cache, prepared.train_records, prepared.vocabulary,
                                    prepared.synset_vocabulary, prepared.image_synsets, batch_size=8,
                                    max_length=24, shuffle=True, seed=1)
    examples = batches = 0
    for inputs, targets in dataset:
        batches += 1
        tokens, caption = inputs["tokens"].numpy(), targets["caption"].numpy()
        assert (tokens[:, 0] == START_ID).all()
        assert inputs["pooled"].shape == (len(tokens), 256) and inputs["grid"].shape == (len(tokens), 4, 128)
        assert targets["tags"].shape == (len(tokens), len(prepared.synset_vocabulary))
        # targets are the tokens shifted by one; every caption ends in the last column or is padded
        np.testing.assert_array_equal(caption[:, :-1][tokens[:, 1:] != PAD_ID], tokens[:, 1:][tokens[:, 1:] != PAD_ID])
        lengths = (tokens != PAD_ID).sum(axis=1)
        assert lengths.max() - lengths.min() <= 8      # one length bucket per batch
        examples += len(tokens)
    assert examples == sum(len(record.captions) for record in prepared.train_records)
    assert batches == int(dataset.cardinality())        # the epoch's length, known in advance


# A small cache written in the format of helpers.training.features, with what the sample lacks: augmented
# copies (an image id on several rows), unreadable rows, cached images without captions.

def write_cache(folder, shards: list[list[tuple[int, int, bool]]]) -> features.FeatureCache:
    """Write shards of `(image id, variant, ok)` rows; row r of the cache (counted across shards)
    has pooled features `r + 0.5` everywhere and grid features `-r` everywhere."""
    folder.mkdir(parents=True, exist_ok=True)
    image_ids = sorted({image_id for shard in shards for image_id, _, _ in shard})
    index = {image_id: n for n, image_id in enumerate(image_ids)}
    first = 0
    for shard_index, rows in enumerate(shards):
        numbers = np.arange(first, first + len(rows), dtype=np.float32)
        arrays = {"ok": np.array([ok for _, _, ok in rows]),
                  "pooled": np.repeat(numbers[:, None] + 0.5, POOLED_DIM, axis=1),
                  "grid": np.repeat(-numbers[:, None, None], GRID_CELLS * FEATURE_DIM, axis=1)
                  .reshape(len(rows), GRID_CELLS, FEATURE_DIM).astype(np.float16)}
        features._write_shard(folder, shard_index, [(index[image_id], variant) for image_id, variant, _ in rows],
                              image_ids, arrays, len(rows))
        first += len(rows)
    manifest = {"format": features.FORMAT_NAME, "version": features.FORMAT_VERSION, "grid_cells": GRID_CELLS,
                "feature_dim": FEATURE_DIM, "pooled_dim": POOLED_DIM, "image_ids": image_ids, "num_rows": first,
                "num_shards": len(shards), "complete": True, "failures": {},
                "shards": {str(n): {"file": features._shard_name(n), "rows": len(rows)}
                           for n, rows in enumerate(shards)}}
    (folder / features.MANIFEST).write_text(json.dumps(manifest))
    return features.FeatureCache(folder)


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    """A 4-shard cache of 40 images (+ augmented copies and unreadable rows) and its captions."""
    rng = np.random.default_rng(7)
    rows = [(image_id, 0, image_id % 13 != 5) for image_id in range(100, 140)]        # 3 unreadable
    rows += [(image_id, 1, True) for image_id in range(100, 140, 3)]                    # augmented copies
    rows = [rows[n] for n in rng.permutation(len(rows))]
    cache = write_cache(tmp_path_factory.mktemp("cache"), [rows[:15], rows[15:30], rows[30:45], rows[45:]])
    records = [Record(image_id, [" ".join(rng.choice(WORDS, size=rng.integers(1, 20)))
                                 for _ in range(rng.integers(0, 6))])          # 0 to 5 captions, 3 to 24 tokens
               for image_id in range(100, 145)]                               # 140-144: not in the cache
    image_synsets = {record.image_id: list(rng.choice(SYNSETS, size=rng.integers(0, 3), replace=False))
                     for record in records}
    return {"cache": cache, "records": records, "vocabulary": Vocabulary(WORDS),
            "synset_vocabulary": SynsetVocabulary(SYNSETS), "image_synsets": image_synsets}


def small_dataset(small, **options) -> tf.data.Dataset:
    return pipelines.caption_dataset(**small, **{"batch_size": 4, "max_length": 24, "shuffle": True,
                                                 "seed": 3, **options})


def batches_of(dataset) -> list:
    """The batches of one pass, as numpy arrays."""
    return [tf.nest.map_structure(lambda tensor: tensor.numpy(), batch) for batch in dataset]


def examples_of(batches) -> collections.Counter:
    """Multiset of `(cache row, caption tokens incl. <start>, tags)` of batches."""
    found = collections.Counter()
    for inputs, targets in batches:
        rows = inputs["pooled"][:, 0] - 0.5
        np.testing.assert_array_equal(inputs["pooled"], np.repeat(rows[:, None], POOLED_DIM, axis=1) + 0.5)
        np.testing.assert_array_equal(inputs["grid"], -np.broadcast_to(rows[:, None, None], inputs["grid"].shape))
        for row, tokens, last, tags in zip(rows, inputs["tokens"], targets["caption"][:, -1], targets["tags"]):
            ids = tuple(int(token) for token in [*tokens, last] if token != PAD_ID)
            found[int(row), ids, tuple(tags.tolist())] += 1
    return found


def expected_examples(cache, records, vocabulary, synset_vocabulary, image_synsets, max_length=24):
    """The same multiset, read from the cache and the records directly."""
    captions = {record.image_id: record.captions for record in records}
    expected, row = collections.Counter(), 0
    for shard_index in range(cache.num_shards):
        shard = cache.shard(shard_index)
        for image_id, ok in zip(shard["image_ids"].tolist(), shard["ok"].tolist()):
            tags = tuple(synset_vocabulary.encode(image_synsets[image_id]).tolist()) if image_id in captions else ()
            for caption in captions.get(image_id, []) if ok else []:
                expected[row, tuple(vocabulary.encode(caption, max_length)), tags] += 1
            row += 1
    return expected


@pytest.mark.parametrize("shuffle", [True, False])
def test_every_cached_row_and_caption_is_one_example_per_epoch(small, shuffle):
    dataset = small_dataset(small, shuffle=shuffle)
    expected = expected_examples(**small)
    assert sum(expected.values()) > 100 and len({row for row, _, _ in expected}) > 40   # augmented rows too
    for _ in range(2):                                                     # epochs 0 and 1
        batches = batches_of(dataset)
        assert examples_of(batches) == expected
        assert len(batches) == int(dataset.cardinality())
        for inputs, targets in batches:
            assert inputs["tokens"].dtype == np.int32 and targets["caption"].dtype == np.int32
            assert inputs["pooled"].dtype == np.float32 and inputs["grid"].dtype == np.float16
            assert targets["tags"].dtype == np.float32 and len(inputs["tokens"]) <= 4
            np.testing.assert_array_equal(inputs["tokens"][:, 1:], targets["caption"][:, :-1])
            assert (inputs["tokens"][:, 0] == START_ID).all()
            lengths = (inputs["tokens"] != PAD_ID).sum(axis=1) + 1                  # <end> included
            buckets = np.searchsorted(pipelines.BUCKET_BOUNDARIES, lengths, side="right")
            assert len(set(buckets.tolist())) == 1                                 # one length bucket
            assert lengths.max() == inputs["tokens"].shape[1] + 1                   # padded to the longest


def test_the_order_of_an_epoch_is_a_function_of_seed_and_epoch_only(small):
    counted = small_dataset(small)                                   # the n-th pass is epoch n
    passes = [batches_of(counted) for _ in range(4)]
    told = batches_of(small_dataset(small, epoch=lambda: 3))          # a fresh dataset told "epoch 3"
    again = batches_of(small_dataset(small, epoch=lambda: 3))
    tf.nest.map_structure(np.testing.assert_array_equal, told, passes[3])
    tf.nest.map_structure(np.testing.assert_array_equal, again, passes[3])

    def rows(batches):
        return [row for inputs, _ in batches for row in (inputs["pooled"][:, 0] - 0.5).tolist()]

    assert len({tuple(rows(batches)) for batches in passes}) == 4      # every epoch differs
    other_seed = batches_of(small_dataset(small, seed=4, epoch=lambda: 3))
    assert rows(other_seed) != rows(passes[3])
    in_order = [batches_of(small_dataset(small, shuffle=False, epoch=lambda e=e: e)) for e in (0, 5)]
    tf.nest.map_structure(np.testing.assert_array_equal, in_order[0], in_order[1])


@pytest.mark.parametrize("batch_size", [1, 3, 4, 64])
def test_cardinality_is_the_number_of_batches(small, batch_size):
    dataset = small_dataset(small, batch_size=batch_size, max_length=12)   # captions cut at 12 ids
    batches = batches_of(dataset)
    assert len(batches) == int(dataset.cardinality()) > 0
    largest = max(len(inputs["tokens"]) for inputs, _ in batches)
    assert largest == batch_size if batch_size <= 4 else largest <= batch_size
    assert max(inputs["tokens"].shape[1] for inputs, _ in batches) == 11


def test_each_shard_is_read_once_per_epoch(small):
    class CountingCache:
        def __init__(self, cache):
            self.cache, self.reads = cache, []

        def __getattr__(self, name):
            return getattr(self.cache, name)

        def shard(self, index, epoch=0):
            self.reads.append(index)
            return self.cache.shard(index, epoch)

    cache = CountingCache(small["cache"])
    dataset = small_dataset({**small, "cache": cache})
    batches_of(dataset)
    assert sorted(cache.reads) == [0, 1, 2, 3]


def test_batches_are_grouped_as_bucket_by_sequence_length_groups_them():
    rng = np.random.default_rng(0)
    lengths = rng.integers(3, 30, size=500).astype(np.int32)
    order, bounds = pipelines._bucket_plan(lengths, [8, 12, 16, 20, 25], batch_size=16)
    planned = [order[start:end].tolist() for start, end in itertools.pairwise(bounds)]
    reference = [batch.numpy().tolist() for batch in tf.data.Dataset.range(500).bucket_by_sequence_length(
        lambda index: tf.gather(lengths, index), bucket_boundaries=[8, 12, 16, 20, 25],
        bucket_batch_sizes=[16] * 6)]
    full = [batch for batch in reference if len(batch) == 16]
    assert planned[:len(full)] == full                                # the same batches, in the same order
    assert sorted(planned[len(full):]) == sorted(batch for batch in reference if len(batch) < 16)
    assert sorted(order.tolist()) == list(range(500))
