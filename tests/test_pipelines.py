"""helpers.pipelines: the tf.data chains (caption batches from the feature cache)."""

from __future__ import annotations

import numpy as np

from helpers import pipelines
from helpers.vocab import PAD_ID, START_ID


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
