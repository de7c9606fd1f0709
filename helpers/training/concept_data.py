"""Training data of the concept decoder: caption text -> (noisy concept set, caption) pairs.

    caption files (COCO JSON, Flickr token files; `helpers.data.caption_text`)
      -> images with their captions, the benchmark photos left out by image id
      -> `helpers.wordnet.concepts.image_concepts` per image (what its captions name, with counts)
      -> `concept_variants` noisy copies per image (`ConceptNoise.corrupt`: the measured misses,
         extras, confusions and confidences of the pretrained tagger), encoded `[L, 3]`
      -> `ConceptCache`: the same interface as the feature cache of image runs, so
         `helpers.training.pipelines.caption_dataset`, `train.fit`, its checkpoints, resume, live
         curves and sample captions are the ones image runs use.

The copies of epoch-independent noise are drawn from `(seed, image id, copy)`; the validation
images (`val_fraction`, drawn with the seed) get one noisy copy, so the validation loss is the loss
on concept sets as the tagger gives them.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from helpers.config import Config
from helpers.data.caption_text import (
    caption_text_sources,
    excluded_image_ids,
    excluded_sources,
    load_caption_text,
)
from helpers.text.vocab import Vocabulary
from helpers.wordnet.concepts import NOISE_FILE, ConceptNoise, ConceptVocabulary, image_concepts
from helpers.wordnet.synsets import SynsetMapper


@dataclasses.dataclass
class ConceptCache:
    """Encoded concept sets in memory, read like a `helpers.training.features.FeatureCache`
    (`num_shards`, `shard`, `shard_rows`, `features`, sizes): rows repeating an image id are its
    noisy copies.

    Attributes:
        image_ids: int64 `[N]`, the image of each row.
        grid: float32 `[N, L, 3]`, its encoded concept set (`ConceptVocabulary.encode`).
        shard_size: rows per shard.
    """

    image_ids: np.ndarray
    grid: np.ndarray
    shard_size: int = 4096
    grid_dtype = np.float32          # concept ids must stay exact (float16 is exact to 2,048 only)

    @property
    def num_rows(self) -> int:
        return len(self.image_ids)

    @property
    def num_shards(self) -> int:
        return max(1, -(-self.num_rows // self.shard_size))

    @property
    def grid_cells(self) -> int:
        return int(self.grid.shape[1])

    @property
    def feature_dim(self) -> int:
        return int(self.grid.shape[2])

    @property
    def pooled_dim(self) -> int:
        return 1

    def _rows(self, index: int) -> slice:
        return slice(index * self.shard_size, (index + 1) * self.shard_size)

    def shard_rows(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        ids = self.image_ids[self._rows(index)]
        return ids, np.ones(len(ids), bool)

    def shard(self, index: int) -> dict[str, np.ndarray]:
        """`{"image_ids" int64 [N], "ok" bool [N], "pooled" float32 [N, 1] (zeros), "grid"
        float32 [N, L, 3]}` of one shard."""
        rows = self._rows(index)
        ids = self.image_ids[rows]
        return {"image_ids": ids, "ok": np.ones(len(ids), bool), "pooled": np.zeros((len(ids), 1), np.float32),
                "grid": self.grid[rows]}

    def features(self, image_ids) -> tuple[np.ndarray, np.ndarray]:
        """`(pooled float32 [K, 1], grid float32 [K, L, 3])`: the first copy of each image.

        Raises:
            KeyError: an image that is not in the cache.
        """
        first = {}
        for row, image_id in enumerate(self.image_ids.tolist()):
            first.setdefault(image_id, row)
        missing = [i for i in image_ids if int(i) not in first]
        if missing:
            raise KeyError(f"images {missing[:5]} have no concept set here")
        rows = [first[int(i)] for i in image_ids]
        return np.zeros((len(rows), 1), np.float32), self.grid[rows]


@dataclasses.dataclass
class ConceptData:
    """What `prepare_concepts` built: records, vocabularies, concept sets and the two caches."""

    train_records: list
    val_records: list
    vocabulary: Vocabulary
    concept_vocabulary: ConceptVocabulary
    noise: ConceptNoise
    train_cache: ConceptCache
    val_cache: ConceptCache
    excluded: int


def encode_copies(records, concept_sets, vocabulary: ConceptVocabulary, noise: ConceptNoise | None,
                  copies: int, seed: int, max_concepts: int, description: str = "") -> ConceptCache:
    """`copies` noisy encodings of every image's concepts (copy c of image i from
    `default_rng([seed, i, c])`; no noise with `noise=None`), copy-major row order."""
    ids = np.array([record.image_id for record in records], np.int64)
    grid = np.zeros((copies * len(records), max_concepts, 3), np.float32)
    rows = tqdm(range(copies * len(records)), desc=description, unit="set", leave=False,
                disable=not description, mininterval=1.0)
    for row in rows:
        copy, index = divmod(row, len(records))
        concepts = concept_sets[index]
        if noise is not None:
            concepts = noise.corrupt(concepts, np.random.default_rng([seed, int(ids[index]), copy]), vocabulary)
        grid[row] = vocabulary.encode(concepts, max_concepts)
    return ConceptCache(np.tile(ids, copies), grid)


def prepare_concepts(config: Config, run_dir: str | Path, progress: bool = True) -> ConceptData:
    """Read the caption text, leave out the excluded photos, derive and corrupt concept sets,
    build (or reuse, from `run_dir`) the word and concept vocabularies.

    Raises:
        helpers.data.coco.DatasetError: no caption text, or an unreadable file (says what to
            download and where to name it).
    """
    run_dir = Path(run_dir)
    started = time.perf_counter()
    excluded = excluded_image_ids(excluded_sources(config.exclude_images))
    records = load_caption_text(caption_text_sources(config.caption_text), excluded)
    rng = np.random.default_rng(config.seed)
    order = rng.permutation(len(records))
    val_count = max(1, int(round(config.val_fraction * len(records))))
    val_records = [records[i] for i in sorted(order[:val_count])][: config.max_val_images]
    train_records = [records[i] for i in sorted(order[val_count:])][: config.max_train_images]
    mapper = SynsetMapper()
    concept_sets = {record.image_id: image_concepts(record.captions, mapper, record.instance_counts)
                    for record in tqdm(train_records + val_records, desc="concepts", unit="image",
                                       leave=False, disable=not progress, mininterval=1.0)}
    vocabulary_path, concepts_path = run_dir / "vocabulary.json", run_dir / "synsets.json"
    if vocabulary_path.is_file() and concepts_path.is_file():
        vocabulary = Vocabulary.load(vocabulary_path)
        concept_vocabulary = ConceptVocabulary.load(concepts_path)
    else:
        vocabulary = Vocabulary.build((c for r in train_records for c in r.captions), config.min_word_count)
        concept_vocabulary = ConceptVocabulary.from_concept_sets(
            (concept_sets[r.image_id] for r in train_records), config.min_concept_images)
        run_dir.mkdir(parents=True, exist_ok=True)
        vocabulary.save(vocabulary_path)
        concept_vocabulary.save(concepts_path)
    noise = ConceptNoise.load(config.concept_noise or NOISE_FILE)
    train_cache = encode_copies(train_records, [concept_sets[r.image_id] for r in train_records],
                                concept_vocabulary, noise, config.concept_variants, config.seed,
                                config.max_concepts, "concept sets" if progress else "")
    val_cache = encode_copies(val_records, [concept_sets[r.image_id] for r in val_records],
                              concept_vocabulary, noise, 1, config.seed + 1, config.max_concepts)
    print(f"caption text: {len(train_records):,} training / {len(val_records):,} validation images "
          f"({sum(len(r.captions) for r in train_records):,} training captions; {len(excluded):,} excluded "
          f"photo ids); vocabulary {len(vocabulary):,} words, {len(concept_vocabulary):,} concepts; "
          f"{config.concept_variants} noisy concept sets per image ({time.perf_counter() - started:.0f} s)")
    return ConceptData(train_records, val_records, vocabulary, concept_vocabulary, noise, train_cache,
                       val_cache, len(excluded))
