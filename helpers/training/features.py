"""Run the frozen encoder once over a split and cache its features in shards on disk.

    <cache>/manifest.json        what the cache holds and which shards are complete
    <cache>/shard-00000.npz      image_ids int64 [N], variants int16 [N], pooled float32 [N, P],
                                 grid float16 [N, L, D]   (N <= shard_size)

Training then reads only the cache (as in TensorFlow's "Image captioning" tutorial), so the CNN
runs once per image instead of once per image per epoch.

Extraction is a `tf.data` chain (paths -> parallel decode + resize -> batch -> prefetch), so
decoding the next batch overlaps the encoder's work on this one; only one shard is held in memory.
It is resumable: every shard is written to a temporary name and renamed atomically, then recorded
in the manifest (also replaced atomically); an interrupted extraction continues with the first
shard the manifest does not list, and a half-written shard is never read. A manifest made by
another encoder (weights fingerprint) or for other images is discarded and the cache rebuilt.

Augmentation (`augment_variants > 0`, training split only): each image is also encoded in that
many randomly transformed copies (rotation <= 15 degrees, shifts <= 10 %, zoom 0.9-1.2, as
mps_autotags offered), stored as extra rows with the same image id. The copies keep the image's
captions, so horizontal flips are off by default: a flip turns "a red circle to the left of a
green square" false. `augment_flip=True` is for tag-only use.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import struct
import time
import weakref
import zipfile
from pathlib import Path
from typing import Callable, Sequence

import keras
import numpy as np
import tensorflow as tf
from tqdm.auto import tqdm

from helpers.training.pipelines import empty_aligned, image_dataset

MANIFEST = "manifest.json"
FORMAT_NAME = "helpers.features.cache"   # as earlier versions wrote it: caches stay readable
FORMAT_VERSION = 1


class FeatureCacheError(RuntimeError):
    """A feature cache is missing, incomplete or unreadable."""


def encoder_fingerprint(encoder: keras.Model) -> str:
    """SHA-1 of an encoder's input size and weights: a cache made by other weights is stale."""
    digest = hashlib.sha1(str(tuple(encoder.input.shape)).encode())
    for weight in encoder.weights:
        digest.update(np.ascontiguousarray(weight.numpy()).tobytes())
    return digest.hexdigest()


def _write_atomically(path: Path, write: Callable) -> None:
    """Write through `write(file)` into `path.tmp`, fsync, then rename onto `path`."""
    temporary = path.with_name(path.name + ".tmp")
    with open(temporary, "wb") as file:
        write(file)
        file.flush()
        os.fsync(file.fileno())
    os.replace(temporary, path)


def _augmenter(flip: bool, seed: int) -> keras.Sequential:
    """Random rotation <= 15 deg, shifts <= 10 %, zoom 0.9-1.2 (and horizontal flip if asked)."""
    layers = [
        keras.layers.RandomRotation(15 / 360, fill_mode="nearest", seed=seed),
        keras.layers.RandomTranslation(0.1, 0.1, fill_mode="nearest", seed=seed + 1),
        keras.layers.RandomZoom((-0.2, 0.1), fill_mode="nearest", seed=seed + 2),  # negative = zoom in
    ]
    if flip:
        layers.append(keras.layers.RandomFlip("horizontal", seed=seed + 3))
    return keras.Sequential(layers, name="augmentation")


def _no_autotune() -> tf.data.Options:
    """tf.data options without the autotuning thread. While the encoder keeps the cores busy, that
    thread made deleting the finished iterator block the extraction for 0.5-4 s (measured on 2
    cores: 48 photos took 10 s instead of 6), and it competes with the encoder for CPU time; the
    decode stage then runs one call per core, all an encoder-bound extraction can use."""
    options = tf.data.Options()
    options.autotune.enabled = False
    return options


DATASET_OPTIONS = _no_autotune()   # the options of the extraction's tf.data chain


def extract_features(
    encoder: keras.Model,
    image_paths: Sequence[str | Path],
    image_ids: Sequence[int],
    cache_dir: str | Path,
    batch_size: int = 32,
    shard_size: int = 1024,
    augment_variants: int = 0,
    augment_flip: bool = False,
    seed: int = 0,
    description: str = "features",
    on_shard_written: Callable[[int], None] | None = None,
) -> "FeatureCache":
    """Encode every image once (plus augmented copies) and write the sharded cache.

    Args:
        encoder: `build_encoder` model, images float32 `[B, S, S, 3]` in [0, 255] ->
            {"pooled": [B, P], "grid": [B, L, D]}; run with `training=False`.
        image_paths, image_ids: the photos and their ids (same length, ids unique).
        cache_dir: the cache folder (created).
        batch_size: images per encoder call.
        shard_size: images (rows) per shard file; one shard is held in memory.
        augment_variants: randomly transformed copies per image stored as extra rows (0: none).
        augment_flip: include horizontal flips in the augmentation (breaks left/right captions).
        seed: seed of the augmentation.
        description: progress-bar label.
        on_shard_written: called with the shard index after each shard is safely on disk (e.g.
            to report progress; an exception raised there stops the extraction, resumably).

    Returns:
        The complete `FeatureCache`.

    Raises:
        ValueError: paths and ids differ in length or ids repeat.
    """
    cache_dir = Path(cache_dir)
    image_paths = [str(path) for path in image_paths]
    image_ids = [int(image_id) for image_id in image_ids]
    if len(image_paths) != len(image_ids):
        raise ValueError(f"{len(image_paths)} paths but {len(image_ids)} image ids")
    if len(set(image_ids)) != len(image_ids):
        raise ValueError("image ids repeat; every image must appear once")
    variants = 1 + int(augment_variants)
    # Rows: (image index, variant); variant 0 is the unchanged photo.
    rows = [(index, variant) for variant in range(variants) for index in range(len(image_ids))]
    image_size = int(encoder.input.shape[1])
    cells, depth = (int(n) for n in encoder.output["grid"].shape[1:])
    pooled_dim = int(encoder.output["pooled"].shape[-1])
    header = {
        "format": FORMAT_NAME, "version": FORMAT_VERSION, "encoder": encoder_fingerprint(encoder),
        "image_size": image_size, "grid_cells": cells, "feature_dim": depth, "pooled_dim": pooled_dim,
        "shard_size": int(shard_size), "augment_variants": int(augment_variants),
        "augment_flip": bool(augment_flip), "seed": int(seed), "image_ids": image_ids,
    }
    num_shards = max(1, -(-len(rows) // shard_size))
    manifest = _read_manifest(cache_dir)
    if manifest is not None and any(manifest.get(key) != value for key, value in header.items()):
        print(f"{cache_dir}: cache made by another encoder or for other images; rebuilding it")
        manifest = None
    if manifest is None:
        cache_dir.mkdir(parents=True, exist_ok=True)
        for stale in cache_dir.glob("shard-*.npz*"):
            stale.unlink()
        manifest = {**header, "num_rows": len(rows), "num_shards": num_shards, "shards": {},
                    "failures": {}, "complete": False}
    done = {int(key) for key in manifest["shards"]}
    todo = [shard for shard in range(num_shards) if shard not in done]
    started = time.perf_counter()
    if todo:
        todo_rows = [row for shard in todo for row in rows[shard * shard_size:(shard + 1) * shard_size]]
        failures: dict[str, str] = {}
        dataset = image_dataset([image_paths[index] for index, _ in todo_rows], image_size,
                                batch_size, failures).with_options(DATASET_OPTIONS)
        augmenter = _augmenter(augment_flip, seed) if augment_variants else None
        encode = compiled_encoder(encoder)
        progress = tqdm(total=len(todo_rows), desc=description, unit="img")
        buffer: dict[str, list] = {"pooled": [], "grid": [], "ok": []}
        position = 0                                      # index into todo_rows
        shard_iter = iter(todo)
        shard = next(shard_iter)
        for pixels, ok in dataset:
            images = tf.cast(pixels, tf.float32)
            count = int(images.shape[0])
            batch_variants = np.array([variant for _, variant in todo_rows[position:position + count]])
            if augmenter is not None and batch_variants.any():
                augmented = augmenter(images, training=True)
                images = tf.where(tf.constant(batch_variants > 0)[:, None, None, None], augmented, images)
            if count < batch_size:   # the last batch: padded, so the compiled function is reused
                images = tf.pad(images, [[0, batch_size - count], [0, 0], [0, 0], [0, 0]])
            features = encode(images)
            grid = tf.cast(features["grid"], tf.float16)   # vectorised: 1.4 ms a batch, numpy's 18-25
            buffer["pooled"].append(features["pooled"].numpy()[:count].astype(np.float32))
            buffer["grid"].append(grid.numpy()[:count])
            buffer["ok"].append(ok.numpy())
            position += count
            progress.update(count)
            while shard is not None and sum(len(b) for b in buffer["ok"]) >= _shard_rows(shard, shard_size, len(rows)):
                size = _shard_rows(shard, shard_size, len(rows))
                shard_rows = rows[shard * shard_size: shard * shard_size + size]
                arrays = {key: np.concatenate(values) for key, values in buffer.items()}
                _write_shard(cache_dir, shard, shard_rows, image_ids, arrays, size)
                buffer = {key: [value[size:]] for key, value in arrays.items()}
                manifest["shards"][str(shard)] = {"file": _shard_name(shard), "rows": size}
                manifest["failures"].update({path: reason for path, reason in failures.items()})
                manifest["complete"] = len(manifest["shards"]) == num_shards
                _write_atomically(cache_dir / MANIFEST,
                                  lambda file: file.write(json.dumps(manifest).encode("utf-8")))
                if on_shard_written is not None:
                    on_shard_written(shard)
                shard = next(shard_iter, None)
        progress.close()
    seconds = time.perf_counter() - started
    cache = FeatureCache(cache_dir)
    print(f"{description}: {cache.num_rows} rows ({len(image_ids)} images x {variants}) in "
          f"{cache.num_shards} shards, {len(todo)} written in {seconds:.1f} s"
          f"{f', {len(cache.failures)} unreadable' if cache.failures else ''} -> {cache_dir}")
    return cache


_COMPILED: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def compiled_encoder(encoder: keras.Model) -> Callable:
    """`encoder(images, training=False)` as a `tf.function`, built once per encoder (so repeated
    extractions, e.g. train then val split, do not trace the backbone again)."""
    function = _COMPILED.get(encoder)
    if function is None:
        function = tf.function(lambda images: encoder(images, training=False), reduce_retracing=True)
        _COMPILED[encoder] = function
    return function


def _shard_name(shard: int) -> str:
    return f"shard-{shard:05d}.npz"


def _shard_rows(shard: int, shard_size: int, total: int) -> int:
    return min(shard_size, total - shard * shard_size)


def _write_shard(cache_dir: Path, shard: int, shard_rows, image_ids, arrays, size: int) -> None:
    ids = np.array([image_ids[index] for index, _ in shard_rows], np.int64)
    variants = np.array([variant for _, variant in shard_rows], np.int16)
    _write_atomically(cache_dir / _shard_name(shard), lambda file: np.savez(
        file, image_ids=ids, variants=variants, ok=arrays["ok"][:size],
        pooled=arrays["pooled"][:size], grid=arrays["grid"][:size]))


def _read_shard_file(path: Path) -> dict[str, np.ndarray]:
    """The arrays of a shard file, each read straight from the file into `pipelines.ALIGNMENT`-aligned
    memory: one copy, and no CRC pass.

    A shard is an uncompressed `.npz` (`np.savez`: a zip archive of stored `.npy` members). Its
    members' data are read at their offsets rather than through `np.load`, which reads a member in
    256 KB pieces through `zipfile` (checking its CRC-32) into 16-byte-aligned memory that
    `tf.numpy_function` then copies once more: together 2-3x the time of the read itself for a
    67 MB shard. Shards are written atomically (a half-written one is never renamed into place),
    so the CRC adds no safety here; a truncated or foreign file still fails (sizes, magic numbers).
    Like `np.load(allow_pickle=False)`, nothing in the file can make this build anything but
    plain numeric arrays.

    Raises:
        FeatureCacheError: the file is not a readable shard (the message names it).
    """
    try:
        arrays = {}
        with zipfile.ZipFile(path) as archive, open(path, "rb") as raw:
            for info in archive.infolist():
                name = info.filename.removesuffix(".npy")
                if info.compress_type != zipfile.ZIP_STORED or name == info.filename:
                    raise ValueError(f"member {info.filename!r} is not a stored .npy array")
                raw.seek(info.header_offset)
                local_header = raw.read(30)                       # zip local file header
                if local_header[:4] != b"PK\x03\x04":
                    raise ValueError(f"member {info.filename!r} has no local header")
                name_length, extra_length = struct.unpack("<HH", local_header[26:30])
                raw.seek(info.header_offset + 30 + name_length + extra_length)
                version = np.lib.format.read_magic(raw)
                read_header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                               else np.lib.format.read_array_header_2_0)
                shape, fortran_order, dtype = read_header(raw)
                if dtype.hasobject or fortran_order:
                    raise ValueError(f"member {info.filename!r} is not a plain C-ordered array")
                array = empty_aligned(shape, dtype)
                if array.nbytes and raw.readinto(memoryview(array.reshape(-1).view(np.uint8))) != array.nbytes:
                    raise ValueError(f"member {info.filename!r} is truncated")
                arrays[name] = array
        return arrays
    except (OSError, ValueError, zipfile.BadZipFile, struct.error) as error:
        raise FeatureCacheError(f"feature shard {path} is unreadable ({error}); delete the cache "
                                f"folder {path.parent} to rebuild it") from error


def _read_manifest(cache_dir: Path) -> dict | None:
    path = cache_dir / MANIFEST
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError:
        return None   # never complete: rebuilt


@dataclasses.dataclass
class FeatureCache:
    """Read a cache written by `extract_features`.

    Attributes:
        path: the cache folder.
        manifest: its manifest (sizes, shards, failures).
    """

    path: Path
    manifest: dict = dataclasses.field(init=False)
    grid_dtype = np.float16     # how grids are stored (and handed to training)

    def __post_init__(self):
        self.path = Path(self.path)
        manifest = _read_manifest(self.path)
        if manifest is None:
            raise FeatureCacheError(f"no feature cache in {self.path}; run "
                                    f"helpers.training.features.extract_features (python -m helpers prepare)")
        if not manifest.get("complete"):
            raise FeatureCacheError(
                f"feature cache {self.path} is incomplete ({len(manifest['shards'])} of "
                f"{manifest['num_shards']} shards); run the extraction again to finish it")
        self.manifest = manifest

    @property
    def num_shards(self) -> int:
        return int(self.manifest["num_shards"])

    @property
    def num_rows(self) -> int:
        return int(self.manifest["num_rows"])

    @property
    def image_ids(self) -> list[int]:
        """Ids of the cached images (each once, extraction order)."""
        return list(self.manifest["image_ids"])

    @property
    def grid_cells(self) -> int:
        return int(self.manifest["grid_cells"])

    @property
    def feature_dim(self) -> int:
        """D, size of each grid cell."""
        return int(self.manifest["feature_dim"])

    @property
    def pooled_dim(self) -> int:
        """P, size of the pooled features."""
        return int(self.manifest["pooled_dim"])

    @property
    def failures(self) -> dict[str, str]:
        """Unreadable photos: path -> reason (their rows have `ok == False`)."""
        return dict(self.manifest.get("failures", {}))

    def shard_rows(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """`(image_ids int64 [N], ok bool [N])` of one shard, read without its features."""
        with np.load(self.path / _shard_name(index)) as data:
            return data["image_ids"], data["ok"]

    def shard(self, index: int, epoch: int = 0) -> dict[str, np.ndarray]:
        """Arrays of one shard: image_ids int64 [N], variants int16 [N], ok bool [N], pooled
        float32 [N, P], grid float16 [N, L, D], each in memory aligned to `pipelines.ALIGNMENT` bytes
        (`epoch` is accepted for `pipelines.caption_dataset` and ignored: features are fixed).

        Raises:
            FeatureCacheError: the shard file is unreadable (truncated, not a shard).
        """
        return _read_shard_file(self.path / _shard_name(index))

    def iter_shards(self):
        for index in range(self.num_shards):
            yield self.shard(index)

    def load(self, variants: bool = True) -> dict[str, np.ndarray]:
        """All readable rows at once (small datasets): the `shard` arrays concatenated.

        Args:
            variants: include augmented copies (False: only variant 0, one row per image).
        """
        parts = list(self.iter_shards())
        arrays = {key: np.concatenate([part[key] for part in parts]) for key in parts[0]}
        keep = arrays["ok"] & (True if variants else arrays["variants"] == 0)
        return {key: value[keep] for key, value in arrays.items()}

    def features(self, image_ids: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
        """`(pooled float32 [K, D], grid float32 [K, L, D])` of the given images (variant 0)."""
        wanted = {int(image_id): n for n, image_id in enumerate(image_ids)}
        pooled = np.zeros((len(wanted), self.pooled_dim), np.float32)
        grid = np.zeros((len(wanted), self.grid_cells, self.feature_dim), np.float32)
        found = set()
        for part in self.iter_shards():
            for row, (image_id, variant) in enumerate(zip(part["image_ids"], part["variants"])):
                if variant == 0 and int(image_id) in wanted:
                    pooled[wanted[int(image_id)]] = part["pooled"][row]
                    grid[wanted[int(image_id)]] = part["grid"][row]
                    found.add(int(image_id))
        missing = sorted(set(wanted) - found)
        if missing:
            raise KeyError(f"images {missing[:5]} are not in the feature cache {self.path}")
        return pooled, grid
