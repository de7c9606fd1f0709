"""Training data of the concept decoder: caption text -> (noisy concept set, caption) pairs.

    caption files (COCO JSON, Flickr token files; `helpers.data.caption_text`)
      -> images with their captions, the benchmark photos left out by image id
      -> `helpers.wordnet.concepts.image_concepts` per image (what its captions name, with counts)
      -> `concept_variants` noisy copies per image and epoch, drawn as shards are read
         (`ConceptNoise.corrupt`: the measured misses, extras, confusions and confidences of the
         pretrained tagger), encoded `[L, 3]`
      -> `ConceptCache`: the same interface as the feature cache of image runs, so
         `helpers.training.pipelines.caption_dataset`, `train.fit`, its checkpoints, resume, live
         curves and sample captions are the ones image runs use.

The noise of a copy is drawn from `(seed, image id, epoch, copy)`; the validation images
(`val_fraction`, drawn with the seed) get one noisy copy, the same every epoch, so the validation
loss is the loss on concept sets as the tagger gives them.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Sequence

import numpy as np
from tqdm.auto import tqdm

from helpers.config import Config
from helpers.data.caption_text import (
    caption_text_sources,
    excluded_image_ids,
    excluded_sources,
    load_caption_text,
    load_parallel_caption_text,
)
from helpers.predict.concept_captions import CONSENSUS_FILE, LEGACY_CONSENSUS_FILE, ConsensusIndex
from helpers.text.alignment import aligned_words
from helpers.text.languages import language_code
from helpers.text.vocab import Vocabulary
from helpers.wordnet.concepts import NOISE_FILE, ConceptNoise, ConceptVocabulary, image_concepts
from helpers.wordnet.synsets import SynsetMapper


@dataclasses.dataclass
class ConceptCache:
    """Concept sets, read like a `helpers.training.features.FeatureCache` (`num_shards`,
    `shard`, `shard_rows`, `features`, sizes), noisy copies drawn as they are read.

    Row r is copy `r // N` of image `r % N` (N images). Its encoded set is the image's concepts
    corrupted by `noise` with `numpy.random.default_rng([seed, image id, epoch, copy])`: new
    noise every epoch (augmentation), the same for the same epoch (a resumed run reads what an
    uninterrupted one reads). With `vary_by_epoch=False` (validation) every epoch reads epoch 0's.

    Attributes:
        image_ids: int64 `[N]`; concept_sets: the `Concept`s of each image.
        vocabulary: the `ConceptVocabulary` that encodes them; noise: a `ConceptNoise` (None: none).
        seed, copies, max_concepts (L), vary_by_epoch, shard_size: as above.
    """

    image_ids: np.ndarray
    concept_sets: list
    vocabulary: ConceptVocabulary
    noise: ConceptNoise | None
    seed: int = 0
    copies: int = 1
    max_concepts: int = 10
    vary_by_epoch: bool = True
    shard_size: int = 4096
    grid_dtype = np.float32          # concept ids must stay exact (float16 is exact to 2,048 only)

    def __post_init__(self):
        # Every WordNet look-up the noise and the encoding make, once, here: shards are then read
        # in parallel threads without touching WordNet (whose reader is not thread-safe).
        from helpers.wordnet.concepts import related_concepts

        for synset in {concept.synset for concepts in self.concept_sets for concept in concepts}:
            self.vocabulary.concept_id(synset)
            if self.noise is not None:
                related_concepts(synset, self.vocabulary)

    @property
    def num_rows(self) -> int:
        return len(self.image_ids) * self.copies

    @property
    def num_shards(self) -> int:
        return max(1, -(-self.num_rows // self.shard_size))

    @property
    def grid_cells(self) -> int:
        return self.max_concepts

    @property
    def feature_dim(self) -> int:
        return 3

    @property
    def pooled_dim(self) -> int:
        return 1

    def _rows(self, index: int) -> np.ndarray:
        return np.arange(index * self.shard_size, min((index + 1) * self.shard_size, self.num_rows))

    def shard_rows(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        ids = self.image_ids[self._rows(index) % len(self.image_ids)]
        return ids, np.ones(len(ids), bool)

    def encode_rows(self, rows: np.ndarray, epoch: int = 0) -> np.ndarray:
        """Encoded sets float32 `[len(rows), L, 3]` of rows, as read in `epoch`."""
        epoch = epoch if self.vary_by_epoch else 0
        grid = np.zeros((len(rows), self.max_concepts, 3), np.float32)
        for out, row in enumerate(rows.tolist()):
            copy, index = divmod(row, len(self.image_ids))
            concepts = self.concept_sets[index]
            if self.noise is not None:
                rng = np.random.default_rng([self.seed, int(self.image_ids[index]), epoch, copy])
                concepts = self.noise.corrupt(concepts, rng, self.vocabulary)
            grid[out] = self.vocabulary.encode(concepts, self.max_concepts)
        return grid

    def shard(self, index: int, epoch: int = 0) -> dict[str, np.ndarray]:
        """`{"image_ids" int64 [N], "ok" bool [N], "pooled" float32 [N, 1] (zeros), "grid"
        float32 [N, L, 3]}` of one shard as read in `epoch`."""
        rows = self._rows(index)
        ids = self.image_ids[rows % len(self.image_ids)]
        return {"image_ids": ids, "ok": np.ones(len(ids), bool), "pooled": np.zeros((len(ids), 1), np.float32),
                "grid": self.encode_rows(rows, epoch)}

    def features(self, image_ids) -> tuple[np.ndarray, np.ndarray]:
        """`(pooled float32 [K, 1], grid float32 [K, L, 3])`: copy 0 of each image, epoch 0.

        Raises:
            KeyError: an image that is not in the cache.
        """
        position = {int(image_id): row for row, image_id in enumerate(self.image_ids.tolist())}
        missing = [i for i in image_ids if int(i) not in position]
        if missing:
            raise KeyError(f"images {missing[:5]} have no concept set here")
        rows = np.array([position[int(i)] for i in image_ids], np.int64)
        return np.zeros((len(rows), 1), np.float32), self.encode_rows(rows)


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


def caption_records(config: Config) -> tuple[list, dict, set[int]]:
    """`(records, concept_text, excluded)` of a caption-text run: its images with their captions
    in `config.language` (`config.caption_text`, or the default sources), every excluded photo
    left out (`config.exclude_images`); the English text each image's concepts come from (the
    captions themselves, or the parallel English sentences of Multi30K), by image id; and the
    excluded image ids.

    Raises:
        helpers.data.coco.DatasetError: no caption text, or an unreadable file.
    """
    excluded = excluded_image_ids(excluded_sources(config.exclude_images))
    language = language_code(config.language)
    sources = caption_text_sources(config.caption_text, language)
    if language == "eng":
        records = load_caption_text(sources, excluded)
        return records, {record.image_id: record.captions for record in records}, excluded
    records, concept_text = load_parallel_caption_text(sources, language)   # concepts from the English sentences
    return records, concept_text, excluded


def split_records(records: Sequence, config: Config) -> tuple[list, list]:
    """`(train, validation)` records of a caption-text run: `config.val_fraction` of the images
    (at least one) held out at random (`config.seed`), each part in file order, then capped at
    `max_train_images` and `max_val_images`."""
    order = np.random.default_rng(config.seed).permutation(len(records))
    val_count = max(1, int(round(config.val_fraction * len(records))))
    return ([records[i] for i in sorted(order[val_count:])][: config.max_train_images],
            [records[i] for i in sorted(order[:val_count])][: config.max_val_images])


def prepare_concepts(config: Config, run_dir: str | Path, progress: bool = True) -> ConceptData:
    """Read the caption text, leave out the excluded photos, derive and corrupt concept sets,
    build (or reuse, from `run_dir`) the word and concept vocabularies.

    Raises:
        helpers.data.coco.DatasetError: no caption text, or an unreadable file (says what to
            download and where to name it).
    """
    run_dir = Path(run_dir)
    started = time.perf_counter()
    language = language_code(config.language)
    records, concept_text, excluded = caption_records(config)
    train_records, val_records = split_records(records, config)
    mapper = SynsetMapper()
    concept_sets = {record.image_id: image_concepts(concept_text[record.image_id], mapper, record.instance_counts)
                    for record in tqdm(train_records + val_records, desc="concepts", unit="image",
                                       leave=False, disable=not progress, mininterval=1.0)}
    vocabulary_path, concepts_path = run_dir / "vocabulary.json", run_dir / "synsets.json"
    if vocabulary_path.is_file() and concepts_path.is_file():
        vocabulary = Vocabulary.load(vocabulary_path)
        concept_vocabulary = ConceptVocabulary.load(concepts_path)
    else:
        vocabulary = Vocabulary.build((c for r in train_records for c in r.captions), config.min_word_count,
                                      language=language)
        concept_vocabulary = ConceptVocabulary.from_concept_sets(
            (concept_sets[r.image_id] for r in train_records), config.min_concept_images)
        run_dir.mkdir(parents=True, exist_ok=True)
        vocabulary.save(vocabulary_path)
        concept_vocabulary.save(concepts_path)
    noise = ConceptNoise.load(config.concept_noise or NOISE_FILE)
    aligned = None
    if language != "eng":    # which English word each word translates: the lexicon's names and checks
        aligned = {word: (english, dice, mapper.map_word(english)) for word, (english, dice) in aligned_words(
            ((concept_text[r.image_id], r.captions) for r in train_records), language).items()}
    ConsensusIndex.from_training([concept_sets[r.image_id] for r in train_records], [r.captions for r in train_records],
                                 concept_vocabulary, vocabulary, aligned).save(run_dir / CONSENSUS_FILE)
    (run_dir / LEGACY_CONSENSUS_FILE).unlink(missing_ok=True)      # an earlier version's, now replaced

    def cache(records, copies, vary_by_epoch):
        return ConceptCache(np.array([r.image_id for r in records], np.int64),
                            [concept_sets[r.image_id] for r in records], concept_vocabulary, noise, config.seed,
                            copies, config.max_concepts, vary_by_epoch)

    train_cache, val_cache = cache(train_records, config.concept_variants, True), cache(val_records, 1, False)
    print(f"caption text ({language}): {len(train_records):,} training / {len(val_records):,} validation images "
          f"({sum(len(r.captions) for r in train_records):,} training captions; {len(excluded):,} excluded "
          f"photo ids); vocabulary {len(vocabulary):,} words, {len(concept_vocabulary):,} concepts; "
          f"{config.concept_variants} noisy concept set(s) per image and epoch ({time.perf_counter() - started:.0f} s)")
    return ConceptData(train_records, val_records, vocabulary, concept_vocabulary, noise, train_cache,
                       val_cache, len(excluded))
