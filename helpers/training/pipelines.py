"""The `tf.data` input pipelines: photos for the encoder, cached features and captions for the heads.

Each is one chain of named stages: every `map` runs in parallel and the chain ends in `prefetch`.

- `image_dataset`: photo files -> decoded, resized pixels in batches (feature extraction, and
  encoder training with its targets).
- `caption_dataset`: the feature cache (`helpers.training.features.FeatureCache`) and the captions ->
  teacher-forcing batches bucketed by caption length (head training).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import tensorflow as tf

from helpers.data.images import ImageLoadError, load_image

BUCKET_BOUNDARIES = (8, 12, 16, 20, 28)   # caption lengths in tokens (<start> and <end> included)


def image_dataset(paths: Sequence[str | Path], image_size: int, batch_size: int,
                  failures: dict | None = None, targets: np.ndarray | None = None,
                  shuffle: bool = False, seed: int = 0, cache: bool = False) -> tf.data.Dataset:
    """Batches of decoded, resized photos.

    Decoding uses `helpers.data.images.load_image` (EXIF orientation, any mode -> RGB, JPEG draft
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

    `cache` is a `helpers.training.features.FeatureCache` (read through `num_shards`, `shard(i, epoch)`,
    `shard_rows(i)`, `grid_cells`, `feature_dim`, `pooled_dim`, `grid_dtype`), or anything read the
    same way (`helpers.training.concept_data.ConceptCache`: concept sets instead of features).

    One example per (readable cached row whose image has captions, caption); augmented copies
    (rows repeating an image id) count as rows. The captions are encoded once into one padded
    matrix; everything else is index arithmetic over it and over the shards, in one chain:

    1. `epoch_plan`: when an epoch's iterator starts, the epoch number and its shard order.
    2. `load_shard` (a `map`, 2 shards at a time): reads a shard once through `cache.shard`,
       permutes its (row, caption) pairs by `(seed, epoch, shard)` and groups them into batches
       by caption length as `bucket_by_sequence_length` would (a batch is emitted when its
       length bucket fills; each bucket's partial batch ends the shard).
    3. `shard_batches` (`interleave`, 2 shards in the cycle, deterministic): the batches of the
       shards, alternately, as (shard, example range) references.
    4. `gather_batch` (parallel `map`, deterministic): `tf.gather` of each batch's feature rows,
       tags and captions, split into inputs and targets.
    5. `assert_cardinality` (the exact number of batches) and `prefetch`.

    About 4 shards are in memory at once (2 being read, 2 loaded ahead; a shard is held twice
    while it is loaded), whatever the size of the cache. Shards are read from disk at about the
    speed of copying them; on 2 busy cores the pipeline gives about half the examples/s of a
    `tf.gather` from arrays already in RAM, two orders of magnitude more than an LSTM decoder
    trains on (`bench/pipeline_speed.py`).

    The order of epoch e is a function of `(seed, e)` only (random draws from
    `numpy.random.default_rng([seed, e])` and `[seed, e, shard]`): a run resumed at epoch e sees
    the batches an uninterrupted run sees there. `epoch()` says which epoch is being read
    (training passes the epoch Keras is in); without it, the n-th pass over the dataset is epoch
    n. With `shuffle=False`, shards, rows and captions keep the cache's order before they are
    grouped into batches (the same batches every epoch). The number of batches is set on the
    dataset (its cardinality), so Keras ends every epoch on time.

    Args:
        cache: the `FeatureCache` of the split.
        records: the split's records (`image_id`, `captions`).
        vocabulary: `helpers.text.vocab.Vocabulary` encoding the captions.
        synset_vocabulary: `helpers.wordnet.synset_vocabulary.SynsetVocabulary` of the tags; None:
            no tag targets (a model without a tagger).
        image_synsets: image id -> synset names of the image (unused without tags).
        batch_size: examples (captions) per batch, B.
        max_length: longest caption in tokens, `<start>` and `<end>` included (longer are cut).
        shuffle: draw a new order every epoch (False: the cache's order).
        seed: seed of the order.
        epoch: returns the 0-based epoch being read (None: count the passes).

    Yields:
        `({"pooled": float32 [B, P], "grid": [B, L, D] of `cache.grid_dtype`, "tokens": int32 [B, T]},
          {"caption": int32 [B, T], "tags": float32 [B, S]})` ("tags" only with a synset
        vocabulary): tokens are the caption without its last id, "caption" the caption without
        <start> (the next word at every step), 0-padded to the longest caption of the batch
        (T + 1 tokens). The last batch of a length bucket in
        a shard may hold fewer than B examples.

    Raises:
        KeyError: an image of `records` has no entry in `image_synsets`.
    """
    table = _CaptionTable(records, vocabulary, synset_vocabulary, image_synsets, max_length)
    cells, depth, pooled_dim = cache.grid_cells, cache.feature_dim, cache.pooled_dim
    grid_dtype = np.dtype(cache.grid_dtype)
    with_tags = synset_vocabulary is not None
    num_shards, num_synsets = cache.num_shards, len(synset_vocabulary) if with_tags else 0
    boundaries = [b for b in BUCKET_BOUNDARIES if b < max_length] + [max_length + 1]
    passes = [0]

    def read_epoch() -> tuple[np.int64, np.ndarray]:
        current = passes[0] if epoch is None else int(epoch())
        passes[0] += 1
        order = (np.random.default_rng([seed, current]).permutation(num_shards) if shuffle
                 else np.arange(num_shards))
        return np.int64(current), order.astype(np.int64)

    def epoch_plan(_):
        current, order = tf.numpy_function(read_epoch, [], (tf.int64, tf.int64), stateful=True)
        current.set_shape(())
        order.set_shape((num_shards,))
        return tf.data.Dataset.from_tensor_slices((tf.fill([num_shards], current), order))

    def read_shard(current, shard_index):
        arrays = cache.shard(int(shard_index), epoch=int(current))
        rows, caption_ids = table.examples(arrays["image_ids"], arrays["ok"])
        if shuffle:
            permutation = np.random.default_rng([seed, int(current), int(shard_index)]).permutation(len(rows))
            rows, caption_ids = rows[permutation], caption_ids[permutation]
        order, bounds = _bucket_plan(table.lengths[caption_ids], boundaries, batch_size)
        rows, caption_ids = rows[order], caption_ids[order]
        lengths = table.lengths[caption_ids]
        batch_lengths = (np.maximum.reduceat(lengths, bounds[:-1]) if len(lengths)   # longest per batch
                         else np.zeros(0, lengths.dtype)).astype(np.int64)
        return (_aligned(arrays["pooled"], np.float32), _aligned(arrays["grid"], grid_dtype),
                table.tags(arrays["image_ids"]), table.tokens[caption_ids], rows.astype(np.int64),
                bounds.astype(np.int64), batch_lengths)

    def load_shard(current, shard_index):
        shard = tf.numpy_function(read_shard, [current, shard_index],
                                  (tf.float32, tf.as_dtype(grid_dtype), tf.float32, tf.int32, tf.int64, tf.int64,
                                   tf.int64),
                                  stateful=False)
        shapes = ((None, pooled_dim),     # pooled [N, P], N rows in the shard
                  (None, cells, depth),   # grid [N, L, D]
                  (None, num_synsets),    # tags [N, S]
                  (None, max_length),     # tokens [K, max_length], K examples, in batch order
                  (None,),                # rows [K], the shard row of each example
                  (None,),                # bounds [batches + 1], the examples of each batch
                  (None,))                # lengths [batches], the longest caption of each batch
        for tensor, shape in zip(shard, shapes):
            tensor.set_shape(shape)
        return tuple(shard)

    def shard_batches(*shard):
        bounds, lengths = shard[5], shard[6]
        return tf.data.Dataset.zip(tf.data.Dataset.from_tensors(shard).repeat(),   # the same tensors, not copies
                                   tf.data.Dataset.from_tensor_slices((bounds[:-1], bounds[1:], lengths)))

    def gather_batch(shard, batch):
        pooled, grid, tags, tokens, rows = shard[:5]
        start, end, length = batch
        batch_rows = rows[start:end]                                        # [B]
        caption = tokens[start:end, :length]                                # [B, T + 1]
        targets = {"caption": caption[:, 1:]}
        if with_tags:
            targets["tags"] = tf.gather(tags, batch_rows)
        return ({"pooled": tf.gather(pooled, batch_rows), "grid": tf.gather(grid, batch_rows),
                 "tokens": caption[:, :-1]}, targets)

    # The batches of an epoch are known in advance: per shard, each length bucket ends with one
    # partial batch, whatever the order. Saying so lets Keras end each epoch on time (without it,
    # the first epoch of every fit ended on "Your input ran out of data", and the order of the
    # next epochs depended on how many iterators Keras had opened).
    batches = _bucketed_batches(cache, table, boundaries, batch_size)
    # At most 4 shards in memory: 2 being read (the interleave cycle), 2 loaded or loading ahead.
    # (A parallel interleave would also load future shards of its own: 6 or more at once.)
    return (tf.data.Dataset.range(1)
            .flat_map(epoch_plan)
            .map(load_shard, num_parallel_calls=2, deterministic=True)
            .interleave(shard_batches, cycle_length=2)      # sequential, hence deterministic
            .map(gather_batch, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
            .apply(tf.data.experimental.assert_cardinality(batches))
            .prefetch(tf.data.AUTOTUNE))


class _CaptionTable:
    """The captions of a split encoded once, and the tags of its images, indexed by arithmetic.

    Attributes:
        tokens: int32 `[C, max_length]`, every caption `[<start>, ..., <end>]` 0-padded; the
            captions of one image are consecutive rows.
        lengths: int32 `[C]`, ids per caption (`<start>` and `<end>` included).
    """

    def __init__(self, records, vocabulary, synset_vocabulary, image_synsets, max_length: int):
        captions = {record.image_id: record.captions for record in records}   # the last record of an id wins
        self.image_ids = np.array(sorted(captions), np.int64)                 # [I], sorted
        counts = np.array([len(captions[image_id]) for image_id in self.image_ids.tolist()], np.int64)
        self.caption_counts = counts                                          # [I]
        self.caption_starts = np.cumsum(counts) - counts                      # [I] first row in `tokens`
        encoded = [vocabulary.encode(caption, max_length)
                   for image_id in self.image_ids.tolist() for caption in captions[image_id]]
        self.tokens = np.zeros((len(encoded), max_length), np.int32)
        for row, ids in zip(self.tokens, encoded):
            row[:len(ids)] = ids
        self.lengths = np.array([len(ids) for ids in encoded], np.int32)
        # Tags as sparse rows (synset indices per image): dense, they would take I x S x 4 bytes
        # (0.5 GB for COCO's 118,000 training images and 1,000 synsets).
        self.num_synsets = len(synset_vocabulary) if synset_vocabulary is not None else 0
        synsets = ([np.flatnonzero(synset_vocabulary.encode(image_synsets[image_id]))
                    for image_id in self.image_ids.tolist()] if synset_vocabulary is not None
                   else [np.zeros(0, np.int64) for _ in self.image_ids.tolist()])
        self.synset_counts = np.array([len(indices) for indices in synsets], np.int64)
        self.synset_starts = np.cumsum(self.synset_counts) - self.synset_counts
        self.synset_indices = np.concatenate(synsets).astype(np.int64) if synsets else np.zeros(0, np.int64)

    def _lookup(self, image_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """`(index int64 [N] into the table, found bool [N])` of image ids."""
        index = np.searchsorted(self.image_ids, image_ids)
        index = np.minimum(index, max(len(self.image_ids) - 1, 0))
        found = (self.image_ids[index] == image_ids) if len(self.image_ids) else np.zeros(len(image_ids), bool)
        return index, found

    def examples(self, image_ids: np.ndarray, ok: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The examples of one shard, in its order: `(row int64 [K], caption int64 [K])`.

        Args:
            image_ids: int64 `[N]`, the image id of each shard row; ok: bool `[N]`, row readable.

        Returns:
            For every readable row whose image has captions, one pair per caption: the row, and
            the caption's row in `tokens`.
        """
        index, found = self._lookup(np.asarray(image_ids, np.int64))
        rows = np.flatnonzero(found & np.asarray(ok, bool))
        counts = self.caption_counts[index[rows]]
        first = np.repeat(np.cumsum(counts) - counts, counts)                   # [K] first example of its row
        captions = np.repeat(self.caption_starts[index[rows]], counts) + np.arange(counts.sum()) - first
        return np.repeat(rows, counts), captions

    def tags(self, image_ids: np.ndarray) -> np.ndarray:
        """Multi-hot tags, float32 `[N, S]`, of shard rows (zeros for images without captions)."""
        index, found = self._lookup(np.asarray(image_ids, np.int64))
        rows = np.flatnonzero(found)
        counts = self.synset_counts[index[rows]]
        first = np.repeat(np.cumsum(counts) - counts, counts)
        positions = np.repeat(self.synset_starts[index[rows]], counts) + np.arange(counts.sum()) - first
        tags = np.zeros((len(image_ids), self.num_synsets), np.float32)
        tags[np.repeat(rows, counts), self.synset_indices[positions]] = 1.0
        return tags


ALIGNMENT = 64   # bytes: `tf.numpy_function` takes a numpy array aligned so without copying it


def empty_aligned(shape: tuple[int, ...], dtype) -> np.ndarray:
    """An uninitialised C-ordered array whose data starts on an `ALIGNMENT`-byte boundary."""
    dtype = np.dtype(dtype)
    size = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    buffer = np.empty(size + ALIGNMENT, np.uint8)
    offset = -buffer.ctypes.data % ALIGNMENT
    return buffer[offset:offset + size].view(dtype).reshape(shape)


def _aligned(array: np.ndarray, dtype) -> np.ndarray:
    """`array` as `dtype` in memory aligned to `ALIGNMENT` bytes: itself when it already is
    (`FeatureCache.shard` reads shards so), else a copy.

    `tf.numpy_function` hands such an array to TensorFlow without copying it; it copies any other
    (`np.load` returns arrays aligned to 16 bytes), and much slower than numpy does: a shard of
    512 rows (67 MB) took 80-90 ms to pass, 25 ms to copy here (2 cores).
    """
    if array.dtype == dtype and array.flags.c_contiguous and array.ctypes.data % ALIGNMENT == 0:
        return array
    aligned = empty_aligned(array.shape, dtype)
    np.copyto(aligned, array, casting="same_kind")
    return aligned


def _bucket_plan(lengths: np.ndarray, boundaries: Sequence[int], batch_size: int) -> tuple[np.ndarray, np.ndarray]:
    """Group a stream of examples into batches of similar length, as `bucket_by_sequence_length`.

    Example i goes to bucket `bisect_right(boundaries, lengths[i])`; a batch is emitted as soon as
    its bucket holds `batch_size` examples, and the partial batch of every bucket at the end.

    Args:
        lengths: int `[K]`, length of each example, in stream order.
        boundaries: increasing bucket boundaries.
        batch_size: examples per full batch.

    Returns:
        `(order int64 [K], bounds int64 [batches + 1])`: batch b holds examples
        `order[bounds[b]:bounds[b + 1]]`, each batch in stream order.
    """
    count = len(lengths)
    bucket = np.searchsorted(np.asarray(boundaries), lengths, side="right")    # [K]
    by_bucket = np.argsort(bucket, kind="stable")                              # [K] grouped, stream order kept
    sorted_bucket = bucket[by_bucket]
    bucket_start = np.searchsorted(sorted_bucket, sorted_bucket, side="left")  # first of its bucket
    bucket_size = np.bincount(bucket, minlength=len(boundaries) + 1)[sorted_bucket]
    batch_end = ((np.arange(count) - bucket_start) // batch_size + 1) * batch_size  # in its bucket
    full = batch_end <= bucket_size
    batch_end = np.minimum(batch_end, bucket_size)
    # A full batch is emitted at the stream position of its last example; partial ones at the end.
    emitted = np.where(full, by_bucket[bucket_start + batch_end - 1], count + sorted_bucket)
    sequence = np.lexsort((by_bucket, emitted))
    _, sizes = np.unique(emitted[sequence], return_counts=True)
    return by_bucket[sequence], np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)


def _bucketed_batches(cache, table: _CaptionTable, boundaries: Sequence[int], batch_size: int) -> int:
    """Batches per epoch of `caption_dataset`: per shard and length bucket, ceil(examples / batch_size)."""
    batches = 0
    for shard_index in range(cache.num_shards):
        image_ids, ok = cache.shard_rows(shard_index)
        _, captions = table.examples(image_ids, ok)
        buckets = np.searchsorted(np.asarray(boundaries), table.lengths[captions], side="right")
        batches += int(sum(math.ceil(count / batch_size) for count in np.bincount(buckets)))
    return batches
