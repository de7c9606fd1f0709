"""The `tf.data` input pipelines: photos for the encoder, cached features and captions for the heads.

Each is one chain of named stages: every `map` runs in parallel and the chain ends in `prefetch`.

- `image_dataset`: photo files -> decoded, resized pixels in batches (feature extraction, and
  encoder training with its targets).
- `caption_dataset`: the feature cache (`helpers.features.FeatureCache`) and the captions ->
  teacher-forcing batches bucketed by caption length (head training).
"""

from __future__ import annotations

import bisect
import math
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import tensorflow as tf

from helpers.images import ImageLoadError, load_image

BUCKET_BOUNDARIES = (8, 12, 16, 20, 28)   # caption lengths in tokens (<start> and <end> included)


def image_dataset(paths: Sequence[str | Path], image_size: int, batch_size: int,
                  failures: dict | None = None, targets: np.ndarray | None = None,
                  shuffle: bool = False, seed: int = 0, cache: bool = False) -> tf.data.Dataset:
    """Batches of decoded, resized photos.

    Decoding uses `helpers.images.load_image` (EXIF orientation, any mode -> RGB, JPEG draft
    mode) in parallel `tf.data` map calls.

    Args:
        paths: photo files.
        image_size: side S of the square the photos are resized to, pixels.
        batch_size: photos per batch.
        failures: without `targets`, a photo that cannot be read comes back as zeros with
            `ok=False` and its reason is stored in `failures[path]`.
        targets: float32 `[N, K]` training targets of the photos (encoder training): then every
            photo must be readable (an unreadable one stops the pipeline with its error).
        shuffle: shuffle the photos (with `seed`, reshuffled every epoch); cache: keep the
            decoded photos in memory after the first epoch.

    Returns:
        Without `targets`: `(pixels uint8 [B, S, S, 3], ok bool [B])`, in order.
        With `targets`: `(pixels float32 [B, S, S, 3], targets float32 [B, K])`.
    """
    names = [str(path) for path in paths]
    if targets is None:
        def load(path: bytes):
            try:
                return load_image(path.decode(), size=image_size), True
            except ImageLoadError as error:
                if failures is not None:
                    failures[path.decode()] = error.reason
                return np.zeros((image_size, image_size, 3), np.uint8), False

        def decode(path):
            pixels, ok = tf.numpy_function(load, [path], (tf.uint8, tf.bool), stateful=False)
            pixels.set_shape((image_size, image_size, 3))
            ok.set_shape(())
            return pixels, ok

        return (tf.data.Dataset.from_tensor_slices(names)
                .map(decode, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
                .batch(batch_size)
                .prefetch(tf.data.AUTOTUNE))

    def load_strict(path):
        return load_image(path.decode(), size=image_size)

    def decode_with_target(path, target):
        pixels = tf.numpy_function(load_strict, [path], tf.uint8, stateful=False)
        pixels.set_shape((image_size, image_size, 3))
        return pixels, target

    def to_float(pixels, target):
        return tf.cast(pixels, tf.float32), target

    dataset = tf.data.Dataset.from_tensor_slices((names, targets)).map(
        decode_with_target, num_parallel_calls=tf.data.AUTOTUNE)
    if cache:
        dataset = dataset.cache()
    if shuffle:
        dataset = dataset.shuffle(len(names), seed=seed, reshuffle_each_iteration=True)
    return dataset.batch(batch_size).map(to_float, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)


def caption_dataset(cache, records, vocabulary, synset_vocabulary,
                    image_synsets, batch_size: int, max_length: int, shuffle: bool = True,
                    seed: int = 0, epoch: Callable[[], int] | None = None) -> tf.data.Dataset:
    """Teacher-forcing batches from the feature cache, bucketed by caption length.

    `cache` is a `helpers.features.FeatureCache` (read through `num_shards`, `shard(i)`,
    `grid_cells`, `feature_dim`, `pooled_dim`).

    One example per (cached row, caption). Shards are read one at a time in random order, rows
    shuffled within a shard and through a buffer, then `bucket_by_sequence_length` groups
    captions of similar length so that batches carry little padding.

    The order of epoch e is a function of `(seed, e)` only: a run resumed at epoch e sees the
    batches an uninterrupted run sees there. `epoch()` says which epoch is being read (training
    passes the epoch Keras is in); without it, the n-th pass over the dataset is epoch n. The
    number of batches is set on the dataset (its cardinality), so Keras ends every epoch on time.

    Yields:
        `({"pooled": float32 [B, P], "grid": float16 [B, L, D], "tokens": int32 [B, T]},
          {"caption": int32 [B, T], "tags": float32 [B, S]})`: tokens are the caption without its
        last id, "caption" the caption without <start> (the next word at every step), 0-padded.
    """
    captions = {record.image_id: [vocabulary.encode(c, max_length) for c in record.captions]
                for record in records}
    targets = {record.image_id: synset_vocabulary.encode(image_synsets[record.image_id]).astype(np.float32)
               for record in records}
    cells, depth, num_synsets = cache.grid_cells, cache.feature_dim, len(synset_vocabulary)
    pooled_dim = cache.pooled_dim
    passes = [0]

    def examples():
        current = passes[0] if epoch is None else int(epoch())
        passes[0] += 1
        rng = np.random.default_rng([seed, current])
        order = rng.permutation(cache.num_shards) if shuffle else range(cache.num_shards)
        for shard_index in order:
            shard = cache.shard(int(shard_index))
            rows = rng.permutation(len(shard["image_ids"])) if shuffle else range(len(shard["image_ids"]))
            for row in rows:
                image_id = int(shard["image_ids"][row])
                if not shard["ok"][row] or image_id not in captions:
                    continue
                for tokens in captions[image_id]:
                    yield shard["pooled"][row], shard["grid"][row], np.asarray(tokens, np.int32), targets[image_id]

    signature = (tf.TensorSpec((pooled_dim,), tf.float32), tf.TensorSpec((cells, depth), tf.float16),
                 tf.TensorSpec((None,), tf.int32), tf.TensorSpec((num_synsets,), tf.float32))
    dataset = tf.data.Dataset.from_generator(examples, output_signature=signature)
    if shuffle:   # the same buffer draws every epoch: the epoch's order comes from `examples`
        dataset = dataset.shuffle(4096, seed=seed, reshuffle_each_iteration=False)
    boundaries = [b for b in BUCKET_BOUNDARIES if b < max_length] + [max_length + 1]
    dataset = dataset.bucket_by_sequence_length(
        element_length_func=lambda pooled, grid, tokens, tags: tf.shape(tokens)[0],
        bucket_boundaries=boundaries, bucket_batch_sizes=[batch_size] * (len(boundaries) + 1))
    # The batches of an epoch are known in advance: every length bucket ends with one partial
    # batch, whatever the order. Saying so lets Keras end each epoch on time (without it, the
    # first epoch of every fit ended on "Your input ran out of data", and the order of the
    # next epochs depended on how many iterators Keras had opened).
    dataset = dataset.apply(tf.data.experimental.assert_cardinality(
        _bucketed_batches(cache, captions, boundaries, batch_size)))

    def split(pooled, grid, tokens, tags):
        return ({"pooled": pooled, "grid": grid, "tokens": tokens[:, :-1]},
                {"caption": tokens[:, 1:], "tags": tags})

    return dataset.map(split, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)


def _bucketed_batches(cache, captions: dict, boundaries: Sequence[int], batch_size: int) -> int:
    """Batches per epoch of `caption_dataset`: per length bucket, ceil(examples / batch_size)."""
    examples = [0] * (len(boundaries) + 1)
    for shard_index in range(cache.num_shards):
        image_ids, ok = cache.shard_rows(shard_index)
        for image_id, readable in zip(image_ids.tolist(), ok.tolist()):
            if readable and image_id in captions:
                for tokens in captions[image_id]:
                    examples[bisect.bisect_right(boundaries, len(tokens))] += 1
    return sum(math.ceil(count / batch_size) for count in examples)
