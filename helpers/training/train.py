"""Training: prepare a run (vocabularies, encoder, feature cache), then train both heads on the cache.

Everything a run produces lives in one folder, `runs/<name>/`:

    config.json          the `Config` it was trained with
    vocabulary.json      caption `Vocabulary`;   synsets.json: the tag `SynsetVocabulary`
    image_synsets.json   tag synsets of every image: the training targets, read by evaluation
    encoder.weights.h5   the encoder after training on tags (only when it was trained)
    features/<split>/    cached encoder features (`helpers.training.features`)
    checkpoints/         best.weights.h5, last.weights.h5, backup/ (resume state)
    logs/                TensorBoard (`tensorboard --logdir runs/<name>/logs`)
    history.csv          losses and metrics per epoch
    bundle/              the trained model for inference (`helpers.bundle.load_bundle`)

`train_run(config, run_dir)` does it all; `prepare` and `fit` are its two halves. A stopped or
killed run continues where it stopped: vocabularies, encoder and features are reused, and
`keras.callbacks.BackupAndRestore` restores the heads' weights, the optimizer state (including
`optimizer.iterations`, hence the learning-rate schedule) and the epoch counter; the data order
and the dropout masks of epoch e are functions of (seed, e) (`pipelines.caption_dataset`,
`callbacks.EpochClock`), so a killed and resumed run computes what an uninterrupted one computes.
Under `strategy="multi_worker"` every worker keeps its own backup in its own copy of the run
folder, and the chief alone saves the bundle (README, "Training on several GPUs or machines").

Command line (`helpers.cli`): `python -m helpers prepare --run NAME ...` and
`python -m helpers train --run NAME`.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import shutil
import time
from pathlib import Path
from typing import Sequence

import keras
import numpy as np
import tensorflow as tf

from helpers import bundle, model
from helpers.config import Config
from helpers.data import vgenome
from helpers.data.coco import load_coco
from helpers.predict.concept_captions import CONSENSUS_FILE, LEGACY_CONSENSUS_FILE
from helpers.pretrained import encoders
from helpers.text.vocab import SPECIAL_TOKENS, START_ID, Vocabulary, tokenize
from helpers.training import concept_data, pipelines
from helpers.training import features as features_module
from helpers.training.callbacks import EpochClock, LiveLossPlot, SampleCaptions, StateFile, tensorboard_available
from helpers.wordnet import synsets
from helpers.wordnet.synset_vocabulary import SynsetVocabulary
from helpers.wordnet.synsets import english_stopwords


# --- preparing a run ------------------------------------------------------------------------------
@dataclasses.dataclass
class Prepared:
    """What `prepare` built for a run (everything training needs).

    Attributes:
        config: the run's settings; run_dir: its folder.
        train_records, val_records: `helpers.data.coco.ImageRecord`s of the two splits.
        vocabulary: caption `Vocabulary`; synset_vocabulary: tag `SynsetVocabulary` (a concept
            run: its `ConceptVocabulary`, the decoder's input).
        image_synsets: image id -> its tag synsets (training targets), both splits (a concept
            run: empty).
        encoder: the frozen encoder the features come from (a concept run: None).
        train_cache, val_cache: `helpers.training.features.FeatureCache`s (a concept run:
            `helpers.training.concept_data.ConceptCache`s).
    """

    config: Config
    run_dir: Path
    train_records: list
    val_records: list
    vocabulary: object
    synset_vocabulary: object
    image_synsets: dict
    encoder: keras.Model | None
    train_cache: features_module.FeatureCache | concept_data.ConceptCache
    val_cache: features_module.FeatureCache | concept_data.ConceptCache

    @property
    def has_tagger(self) -> bool:
        """Whether the heads include a synset classifier (not for the concept decoder)."""
        return self.config.decoder != "concepts"


def load_records(config: Config) -> tuple[list, list]:
    """Training and validation `ImageRecord`s of `config.data_dir` (capped by config)."""
    train = load_coco(config.data_dir, config.train_split)[: config.max_train_images]
    val = load_coco(config.data_dir, config.val_split)[: config.max_val_images]
    if not train or not val:
        raise ValueError(f"{config.data_dir} has {len(train)} training and {len(val)} validation "
                         f"images with captions; both splits need some")
    return train, val


def image_tag_targets(config: Config, records: Sequence, progress: bool = False) -> dict[int, set[str]]:
    """Tag synsets (training targets) of every image, by the one definition of the project,
    `helpers.wordnet.synsets.records_synsets`: synsets named in at least 2 of its captions, plus its
    categories' synsets and (when `<data_dir>/vgenome` or `config.vgenome_dir` exists) the
    Visual Genome object synsets of the image."""
    vgenome_dir = Path(config.vgenome_dir) if config.vgenome_dir else Path(config.data_dir) / "vgenome"
    visual_genome = vgenome.synsets_by_coco_id(vgenome_dir) if vgenome_dir.is_dir() else {}
    found = synsets.records_synsets(records, synsets.SynsetMapper(), visual_genome, min_votes=2,
                                    progress=progress)
    return {record.image_id: set(names) for record, names in zip(records, found)}


IMAGE_SYNSETS_FILE = "image_synsets.json"   # in the run folder: image id -> its tag synsets


def save_image_synsets(run_dir: Path, image_synsets: dict[int, set[str]]) -> Path:
    """Write `run_dir/image_synsets.json` (`{"<image id>": [synset, ...]}`, sorted)."""
    path = Path(run_dir) / IMAGE_SYNSETS_FILE
    path.write_text(json.dumps({str(k): sorted(v) for k, v in sorted(image_synsets.items())}) + "\n",
                    encoding="utf-8")
    return path


def load_image_synsets(run_dir: str | Path, config: Config, records: Sequence) -> dict[int, set[str]]:
    """Tag targets of `records` as `prepare` saved them in the run folder; images it did not
    cover (another split, or a run prepared before the file existed) are computed by the same
    `image_tag_targets`."""
    path = Path(run_dir) / IMAGE_SYNSETS_FILE
    saved = ({int(k): set(v) for k, v in json.loads(path.read_text(encoding="utf-8")).items()}
             if path.is_file() else {})
    missing = [record for record in records if record.image_id not in saved]
    if missing:
        saved.update(image_tag_targets(config, missing))
    return {record.image_id: saved[record.image_id] for record in records}


def encoder_targets(records, image_synsets, synset_vocabulary, words: Sequence[str] = ()) -> np.ndarray:
    """Multi-hot targets of encoder training, float32 `[N, num_synsets + len(words)]`: the image's
    tag synsets, then each of `words` present in at least 2 of its captions."""
    column = {word: index for index, word in enumerate(words)}
    targets = np.zeros((len(records), len(synset_vocabulary) + len(words)), np.float32)
    for row, record in enumerate(records):
        targets[row, :len(synset_vocabulary)] = synset_vocabulary.encode(image_synsets[record.image_id])
        if column:
            votes: dict[str, int] = {}
            for caption in record.captions:
                for word in set(tokenize(caption)) & column.keys():
                    votes[word] = votes.get(word, 0) + 1
            for word, count in votes.items():
                if count >= min(2, len(record.captions)):
                    targets[row, len(synset_vocabulary) + column[word]] = 1.0
    return targets


def train_encoder(config: Config, encoder: keras.Model, train_records, val_records, image_synsets,
                  synset_vocabulary, vocabulary=None, verbose: int = 1) -> dict:
    """Train the encoder with a synset classifier on the images (multi-label BCE), end to end.

    With `weights=None` the whole backbone trains from scratch (how the embedded sample gets a
    useful encoder without ImageNet weights); with pretrained weights only the last
    `config.fine_tune_layers` layers train (fine-tuning the top blocks). Afterwards the encoder is
    frozen again. With `config.encoder_word_targets` (and a `vocabulary`) the classifier also
    predicts which caption words (non-stopwords of the vocabulary) at least 2 captions use: words
    such as "big", "tiny", "two" or "above" are no tags, yet the captions need the encoder to see
    them. Returns the Keras history dict.
    """
    words: list[str] = []
    if config.encoder_word_targets and vocabulary is not None:
        stopwords = english_stopwords()
        words = [w for w in vocabulary.id_to_word if w not in SPECIAL_TOKENS and w not in stopwords]
    train_targets = encoder_targets(train_records, image_synsets, synset_vocabulary, words)
    val_targets = encoder_targets(val_records, image_synsets, synset_vocabulary, words)
    encoders.set_trainable_blocks(encoder, None if config.weights is None else config.fine_tune_layers)
    tagger = model.SynsetClassifier(train_targets.shape[1], config.tagger_hidden_dim,
                                           config.dropout, name="tagger")
    images = keras.Input(encoder.input.shape[1:], name="images")
    classifier = keras.Model(images, tagger(encoder(images)["pooled"]), name="encoder_tagger")
    size = int(encoder.input.shape[1])
    in_memory = len(train_records) * size * size * 3 < 2**31   # decoded photos cached under 2 GB
    train = pipelines.image_dataset([r.path for r in train_records], size, config.encoder_batch_size,
                                    targets=train_targets, shuffle=True, seed=config.seed, cache=in_memory)
    val = pipelines.image_dataset([r.path for r in val_records], size, config.encoder_batch_size,
                                  targets=val_targets, shuffle=False, seed=config.seed, cache=in_memory)
    steps = math.ceil(len(train_records) / config.encoder_batch_size) * config.encoder_epochs
    schedule = keras.optimizers.schedules.CosineDecay(
        0.0, decay_steps=max(1, steps - steps // 10), warmup_target=config.encoder_learning_rate,
        warmup_steps=steps // 10, alpha=0.05)
    classifier.compile(optimizer=keras.optimizers.Adam(schedule), loss=keras.losses.BinaryCrossentropy(),
                       metrics=[keras.metrics.F1Score(average="micro", threshold=0.5, name="f1")],
                       jit_compile=False)
    started = time.perf_counter()
    history = classifier.fit(train, validation_data=val, epochs=config.encoder_epochs, verbose=verbose,
                             shuffle=False)   # the dataset shuffles itself
    encoder.trainable = False
    logs = {key: values[-1] for key, values in history.history.items()}
    print(f"encoder trained on {train_targets.shape[1]} targets ({len(words)} of them caption words): "
          f"{config.encoder_epochs} epochs in {time.perf_counter() - started:.0f} s, "
          f"val loss {logs.get('val_loss', float('nan')):.4f}, val micro-F1 {logs.get('val_f1', float('nan')):.3f}")
    return history.history


# Settings a run may change between a stop and its resumption (the others shape its files).
RESUMABLE_FIELDS = frozenset({"epochs", "early_stopping_patience", "caption_samples", "strategy",
                              "feature_batch_size"})


def check_resumable(config: Config, run_dir: Path) -> None:
    """Refuse to continue a run folder made with other settings.

    Raises:
        ValueError: `run_dir/config.json` differs from `config` in a field outside
            `RESUMABLE_FIELDS` (names the fields; use another run name or delete the folder).
    """
    saved_path = Path(run_dir) / "config.json"
    if not saved_path.is_file():
        return
    saved = Config.load(saved_path)
    changed = sorted(field.name for field in dataclasses.fields(Config)
                     if field.name not in RESUMABLE_FIELDS
                     and getattr(saved, field.name) != getattr(config, field.name))
    if changed:
        details = ", ".join(f"{name}: {getattr(saved, name)!r} -> {getattr(config, name)!r}" for name in changed)
        raise ValueError(f"run folder {run_dir} was made with other settings ({details}); use another "
                         f"run name, or delete the folder (restart=True in 2_Training) to start again")


def prepare(config: Config, run_dir: str | Path, verbose: int = 1) -> Prepared:
    """Build (or reuse) everything training needs, in `run_dir`.

    A concept-decoder run (`config.decoder == "concepts"`) reads caption text instead
    (`helpers.training.concept_data.prepare_concepts`): no encoder, no photos.

    Steps: load records; build the vocabulary (`min_word_count`) and the synset vocabulary
    (`min_synset_images`) unless the run already has them; save `config.json`; build the encoder
    (training it on tags when `config.encoder_epochs > 0`, reused from `encoder.weights.h5` when
    the run already has it); cache train and val features (resumable).

    Raises:
        helpers.data.coco.DatasetError: the data folder is not COCO's layout.
        helpers.pretrained.encoders.WeightsUnavailableError: ImageNet weights cannot be had.
    """
    run_dir = Path(run_dir)
    check_resumable(config, run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    keras.utils.set_random_seed(config.seed)
    if config.decoder == "concepts":
        data = concept_data.prepare_concepts(config, run_dir, progress=bool(verbose))
        config.save(run_dir / "config.json")
        return Prepared(config, run_dir, data.train_records, data.val_records, data.vocabulary,
                        data.concept_vocabulary, {}, None, data.train_cache, data.val_cache)
    started = time.perf_counter()
    train_records, val_records = load_records(config)
    image_synsets = image_tag_targets(config, train_records + val_records)
    save_image_synsets(run_dir, image_synsets)
    vocabulary_path, synsets_path = run_dir / "vocabulary.json", run_dir / "synsets.json"
    if vocabulary_path.is_file() and synsets_path.is_file():
        vocabulary, synset_vocabulary = Vocabulary.load(vocabulary_path), SynsetVocabulary.load(synsets_path)
        print(f"reusing the run's vocabularies: {len(vocabulary)} words, {len(synset_vocabulary)} synsets")
    else:
        vocabulary = Vocabulary.build((c for r in train_records for c in r.captions), config.min_word_count)
        synset_vocabulary = SynsetVocabulary.build(
            (image_synsets[record.image_id] for record in train_records), min_images=config.min_synset_images)
        vocabulary.save(vocabulary_path)
        synset_vocabulary.save(synsets_path)
    config.save(run_dir / "config.json")
    print(f"data: {len(train_records)} training / {len(val_records)} validation images; vocabulary "
          f"{len(vocabulary)} words, {len(synset_vocabulary)} synsets ({time.perf_counter() - started:.1f} s)")

    encoder_path = run_dir / "encoder.weights.h5"
    trains_encoder = config.encoder_epochs > 0 and (config.weights is None or config.fine_tune_layers > 0)
    if trains_encoder and encoder_path.is_file():
        encoder = encoders.build_encoder(config.backbone, str(encoder_path), config.image_size)
        print(f"reusing the run's trained encoder {encoder_path}")
    else:
        encoder = encoders.build_encoder(config.backbone, config.weights, config.image_size)
        if trains_encoder:
            train_encoder(config, encoder, train_records, val_records, image_synsets, synset_vocabulary,
                          vocabulary, verbose=verbose)
            encoder.save_weights(encoder_path)
    encoder.trainable = False

    caches = []
    for split, records, variants in ((config.train_split, train_records, config.augment_variants),
                                     (config.val_split, val_records, 0)):
        caches.append(features_module.extract_features(
            encoder, [record.path for record in records], [record.image_id for record in records],
            run_dir / "features" / split, batch_size=config.feature_batch_size,
            shard_size=config.feature_shard_size, augment_variants=variants,
            augment_flip=config.augment_flip, seed=config.seed, description=f"features {split}"))
    return Prepared(config, run_dir, train_records, val_records, vocabulary, synset_vocabulary,
                    image_synsets, encoder, caches[0], caches[1])


# --- model, loss, metrics -------------------------------------------------------------------------
@tf.function(jit_compile=True, reduce_retracing=True)
def token_cross_entropy(targets, logits):
    """Cross-entropy of every caption token and the mask of the real ones, XLA-compiled.

    Args:
        targets: int32 `[B, T]` word ids, <pad> = 0 for positions past the caption's end.
        logits: float32 `[B, T, V]` unnormalised word scores.

    Returns:
        `(loss float32 [B, T], mask float32 [B, T])`: -log softmax(logits)[target] in nats, and 1
        where the target is a word, 0 at <pad> (its loss is computed but must be masked out).

    Why compiled: the soft-max over V words is the largest element-wise work of a training step.
    XLA fuses the log-sum-exp, the pick of the target and, in the backward pass, softmax minus
    one-hot into a few passes over `[B, T, V]`. TensorFlow's own
    `SparseSoftmaxCrossEntropyWithLogits` kernel, with Keras' `ignore_class` masking around it,
    takes 4x longer on CPUs (`bench/train_speed.py`, README "Defaults decided by measurement").
    """
    targets = tf.cast(targets, tf.int32)
    logits = tf.cast(logits, tf.float32)
    # The target's logit through a one-hot product, not a gather: its gradient is a fused
    # element-wise op, where a gather's is a scatter that XLA runs serially on CPUs.
    picked = tf.reduce_sum(logits * tf.one_hot(targets, tf.shape(logits)[-1], dtype=logits.dtype), axis=-1)  # (B, T)
    return tf.reduce_logsumexp(logits, axis=-1) - picked, tf.cast(targets != 0, tf.float32)


@keras.saving.register_keras_serializable(package="helpers")
class MaskedCaptionCrossEntropy(keras.losses.Loss):
    """Mean cross-entropy over the caption tokens of a batch, <pad> (id 0) ignored: what
    `keras.losses.SparseCategoricalCrossentropy(from_logits=True, ignore_class=0)` computes
    (equal to float32 rounding, `tests/test_train.py`), through `token_cross_entropy`.

    `y_true` int `[B, T]`, `y_pred` float32 logits `[B, T, V]`; the loss is a float32 scalar (nats).
    `call` gives each real token the weight B T / (real tokens), as Keras' `ignore_class` does, so
    that Keras' "sum_over_batch_size" reduction is the mean over real tokens and is scaled for
    `tf.distribute` replicas as every Keras loss is.
    """

    def __init__(self, name="caption_cross_entropy", **kwargs):
        super().__init__(name=name, **kwargs)

    def call(self, y_true, y_pred):
        loss, mask = token_cross_entropy(y_true, y_pred)                 # (B, T), (B, T)
        size = tf.cast(tf.size(mask), tf.float32)
        return loss * mask * (size / tf.maximum(tf.reduce_sum(mask), 1.0))


@keras.saving.register_keras_serializable(package="helpers")
class Perplexity(keras.metrics.Metric):
    """exp(mean cross-entropy per caption token), <pad> (id 0) ignored."""

    def __init__(self, name="perplexity", **kwargs):
        super().__init__(name=name, **kwargs)
        self.total = self.add_variable(shape=(), initializer="zeros", name="total")
        self.count = self.add_variable(shape=(), initializer="zeros", name="count")

    def update_state(self, y_true, y_pred, sample_weight=None):
        loss, mask = token_cross_entropy(y_true, y_pred)
        self.total.assign_add(keras.ops.sum(loss * mask))
        self.count.assign_add(keras.ops.sum(mask))

    def result(self):
        return keras.ops.exp(self.total / keras.ops.maximum(self.count, 1.0))


@keras.saving.register_keras_serializable(package="helpers")
class FusedAdam(keras.optimizers.Adam):
    """`keras.optimizers.Adam` (Kingma and Ba 2015, with epsilon outside the square root as in
    Keras) whose update of each weight is TensorFlow's fused `ResourceApplyAdam` kernel: one pass
    over the weight, its two moments and the gradient, instead of the ten element-wise operations
    of Keras' `update_step`. Same hyper-parameters, variables (checkpoints and `BackupAndRestore`
    state are interchangeable with Adam's) and updates to float32 rounding (`tests/test_train.py`);
    half the optimizer time of a training step on CPUs (`bench/train_speed.py`).

    Sparse gradients (`tf.IndexedSlices`, from the word embedding) are made dense first, as Keras'
    Adam does: every row's moments decay at every step. `global_clipnorm` clips with
    `tf.clip_by_global_norm` (the same scale; its norm is one fused reduction per gradient, where
    Keras squares each gradient into a new tensor first: a fifth of the attention decoder's step).
    """

    def _clip_gradients(self, grads):
        if self.global_clipnorm and not self.clipnorm:
            return tf.clip_by_global_norm(grads, self.global_clipnorm)[0]
        return super()._clip_gradients(grads)

    def update_step(self, gradient, variable, learning_rate):
        if self.amsgrad:                                  # no fused kernel: Keras' own update
            return super().update_step(gradient, variable, learning_rate)
        dtype = variable.dtype
        if isinstance(gradient, tf.IndexedSlices):
            gradient = tf.convert_to_tensor(gradient)
        step = tf.cast(self.iterations + 1, dtype)
        index = self._get_variable_index(variable)
        momentum, velocity = self._momentums[index], self._velocities[index]
        beta_1, beta_2 = tf.cast(self.beta_1, dtype), tf.cast(self.beta_2, dtype)
        tf.raw_ops.ResourceApplyAdam(
            var=_handle(variable), m=_handle(momentum), v=_handle(velocity),
            beta1_power=tf.pow(beta_1, step), beta2_power=tf.pow(beta_2, step),
            lr=tf.cast(learning_rate, dtype), beta1=beta_1, beta2=beta_2,
            epsilon=tf.cast(self.epsilon, dtype), grad=tf.cast(gradient, dtype))


def _handle(variable):
    """The resource handle of a Keras or TensorFlow variable (inside `Strategy.update`, the
    current device's copy of a distributed one)."""
    return (variable.value if isinstance(variable, keras.Variable) else variable).handle


def compile_heads(heads: model.CaptionTagger, config: Config, steps: int) -> None:
    """Adam (`FusedAdam`) with linear warmup then cosine decay (per step) and gradient clipping;
    masked caption cross-entropy (`MaskedCaptionCrossEntropy`) + `tag_loss_weight` x tag BCE;
    perplexity, token accuracy and tag micro-F1 (the caption terms only for heads without a
    tagger)."""
    total = max(1, steps * config.epochs)
    warmup = min(int(config.warmup_epochs * steps), total // 2)
    schedule = keras.optimizers.schedules.CosineDecay(
        0.0 if warmup else config.learning_rate, decay_steps=max(1, total - warmup),
        warmup_target=config.learning_rate if warmup else None, warmup_steps=warmup, alpha=0.02)
    optimizer = FusedAdam(schedule, global_clipnorm=config.clip_norm or None)
    loss = {"caption": MaskedCaptionCrossEntropy()}
    loss_weights, metrics = {"caption": 1.0}, {"caption": [Perplexity()]}
    if heads.tagger is not None:
        loss["tags"] = keras.losses.BinaryCrossentropy()
        loss_weights["tags"] = config.tag_loss_weight
        metrics["tags"] = [keras.metrics.F1Score(average="micro", threshold=0.5, name="f1")]
    heads.compile(optimizer=optimizer, loss=loss, loss_weights=loss_weights, metrics=metrics, jit_compile=False)


def concept_step_seconds(config: Config, vocabulary_size: int, num_concept_ids: int, length: int | None = None,
                         steps: int = 3, seed: int = 0) -> float:
    """Seconds one training step of a concept decoder of `config`'s sizes takes on this machine:
    the heads built and compiled as `fit` builds them, trained on random batches of
    `config.batch_size` captions of `length` positions and full concept sets (`max_concepts`
    cells); the median of `steps` timed steps after 2 untimed ones (tracing). About 10 s on 2
    cores. The demo sizes its training with it (`helpers.demo`).

    Args:
        config: a concept-decoder config (`decoder == "concepts"`).
        vocabulary_size: words of the caption vocabulary (the output layer's width).
        num_concept_ids: concept ids (`ConceptVocabulary.num_ids`).
        length: token positions per caption (None: `config.max_caption_length`, the longest).

    Raises:
        ValueError: `config` is not a concept decoder's.
    """
    if config.decoder != "concepts":
        raise ValueError(f"concept_step_seconds measures a concept decoder, not decoder={config.decoder!r}")
    from helpers.wordnet.concepts import PHOTO_CONCEPT_ID

    rng = np.random.default_rng(seed)
    batch, cells = config.batch_size, config.max_concepts
    length = length or config.max_caption_length
    heads = model.build_heads(config, vocabulary_size, num_concept_ids, cells, 3)
    compile_heads(heads, config, steps=1000)

    def random_batch():
        tokens = rng.integers(len(SPECIAL_TOKENS), vocabulary_size, size=(batch, length + 1)).astype(np.int32)
        tokens[:, 0] = START_ID
        grid = np.zeros((batch, cells, 3), np.float32)          # (concept id, confidence, count)
        grid[:, 0] = (PHOTO_CONCEPT_ID, 1.0, 0.0)
        grid[:, 1:, 0] = rng.integers(PHOTO_CONCEPT_ID + 1, num_concept_ids, size=(batch, cells - 1))
        grid[:, 1:, 1] = rng.random((batch, cells - 1))
        grid[:, 1:, 2] = 1.0
        return ({"pooled": np.zeros((batch, 1), np.float32), "grid": grid, "tokens": tokens[:, :-1]},
                {"caption": tokens[:, 1:]})

    batches = [random_batch() for _ in range(2)]
    timings = []
    for step in range(2 + steps):
        inputs, targets = batches[step % 2]
        started = time.perf_counter()
        heads.train_on_batch(inputs, targets)
        timings.append(time.perf_counter() - started)
    return float(np.median(timings[2:]))


def get_strategy(name: str | tf.distribute.Strategy = "default") -> tf.distribute.Strategy:
    """`tf.distribute` strategy by name: "default" (one device), "mirrored" (all local devices,
    synchronous), "multi_worker" (several machines described by the TF_CONFIG variable; create it
    before TensorFlow runs any operation: collective ops are configured at program start, which
    is why `train_run` creates its strategy first). A strategy object is returned as it is."""
    if isinstance(name, tf.distribute.Strategy):
        return name
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    if name == "multi_worker":
        if "TF_CONFIG" not in os.environ:
            raise ValueError("strategy 'multi_worker' needs the TF_CONFIG environment variable "
                             "(cluster and task of this worker); see tf.distribute.MultiWorkerMirroredStrategy")
        return tf.distribute.MultiWorkerMirroredStrategy()
    raise ValueError(f"unknown strategy {name!r}; choose 'default', 'mirrored' or 'multi_worker'")


def is_chief(strategy: tf.distribute.Strategy) -> bool:
    """Whether this process writes what a run keeps once (its bundle): always, except a
    multi-worker worker other than the chief (TF_CONFIG's "chief" task, else worker 0)."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.cluster_spec().as_dict():
        return True
    if resolver.task_type == "chief":
        return True
    return resolver.task_type == "worker" and resolver.task_id == 0 \
        and "chief" not in resolver.cluster_spec().as_dict()


# --- callbacks ------------------------------------------------------------------------------------
def training_callbacks(prepared: Prepared, live_plot: bool = True, extra: Sequence = ()) -> list:
    """Backup/resume, best + last checkpoints, CSV history, TensorBoard, early stopping, the live
    loss plot and greedy captions of fixed validation images."""
    run_dir, config = prepared.run_dir, prepared.config
    checkpoints = run_dir / "checkpoints"
    checkpoints.mkdir(parents=True, exist_ok=True)
    callbacks = [
        keras.callbacks.BackupAndRestore(str(checkpoints / "backup"), delete_checkpoint=False),
        keras.callbacks.ModelCheckpoint(str(checkpoints / "best.weights.h5"), monitor="val_loss",
                                        save_best_only=True, save_weights_only=True),
        keras.callbacks.ModelCheckpoint(str(checkpoints / "last.weights.h5"), save_weights_only=True),
        keras.callbacks.CSVLogger(str(run_dir / "history.csv"), append=True),
        keras.callbacks.EarlyStopping(monitor="val_loss", patience=config.early_stopping_patience),
        StateFile(checkpoints / "state.json"),
    ]
    if tensorboard_available():
        callbacks.append(keras.callbacks.TensorBoard(str(run_dir / "logs"), write_graph=False, profile_batch=0))
    else:
        print("TensorBoard is not installed: no logs/ for this run (pip install tensorboard to get them)")
    if live_plot:
        callbacks.append(LiveLossPlot(run_dir / "history.csv"))
    if config.caption_samples:
        callbacks.append(SampleCaptions(prepared.val_cache, prepared.val_records, prepared.vocabulary,
                                        config.max_caption_length, config.caption_samples))
    return [*callbacks, *extra]


# --- training -------------------------------------------------------------------------------------
def fit(prepared: Prepared, strategy: str | tf.distribute.Strategy | None = None, callbacks: Sequence = (),
        live_plot: bool = True,
        verbose: int | str = "auto") -> tuple[model.CaptionTagger, dict]:
    """Train the heads on the feature cache; resume from the run's backup when there is one.

    Args:
        prepared: from `prepare`.
        strategy: tf.distribute strategy, or its name (None: `config.strategy`); the model and
            optimizer are built under its scope.
        callbacks: extra Keras callbacks.
        live_plot: redraw loss curves in a notebook.
        verbose: Keras `fit` verbosity.

    Returns:
        `(heads, history)`: the `CaptionTagger` with the best validation-loss weights, and the
        history of this call (`{metric: [value per epoch]}`).
    """
    config = prepared.config
    distribution = get_strategy(strategy or config.strategy)
    clock = EpochClock(config.seed)
    tags = prepared.synset_vocabulary if prepared.has_tagger else None
    train = pipelines.caption_dataset(prepared.train_cache, prepared.train_records, prepared.vocabulary,
                                      tags, prepared.image_synsets, config.batch_size,
                                      config.max_caption_length, shuffle=True, seed=config.seed,
                                      epoch=lambda: clock.epoch)
    val = pipelines.caption_dataset(prepared.val_cache, prepared.val_records, prepared.vocabulary,
                                    tags, prepared.image_synsets, config.batch_size,
                                    config.max_caption_length, shuffle=False)
    steps = int(train.cardinality())                       # optimizer steps per epoch, exactly
    outputs = len(prepared.synset_vocabulary) if prepared.has_tagger else prepared.synset_vocabulary.num_ids
    with distribution.scope():
        heads = model.build_heads(config, len(prepared.vocabulary), outputs,
                                  prepared.train_cache.grid_cells, prepared.train_cache.feature_dim,
                                  prepared.train_cache.pooled_dim)
        compile_heads(heads, config, steps)
    started = time.perf_counter()
    history = heads.fit(train, validation_data=val, epochs=config.epochs, verbose=verbose,
                        callbacks=[clock, *training_callbacks(prepared, live_plot, callbacks)],
                        shuffle=False)   # the dataset shuffles itself, by shard and row
    best = prepared.run_dir / "checkpoints" / "best.weights.h5"
    if best.is_file():
        heads.load_weights(best)
    logs = history.history
    if logs.get("loss"):
        print(f"heads trained: epochs {history.epoch[0] + 1}-{history.epoch[-1] + 1} of {config.epochs} in "
              f"{time.perf_counter() - started:.0f} s; last train loss {logs['loss'][-1]:.4f}, "
              f"val loss {logs.get('val_loss', [float('nan')])[-1]:.4f} (bundle uses the best val loss)")
    else:
        print(f"heads: all {config.epochs} epochs were already done (run folder {prepared.run_dir})")
    return heads, logs


@dataclasses.dataclass
class TrainResult:
    """What `train_run` produced: the run folder, its bundle, this call's history, seconds."""

    run_dir: Path
    bundle_dir: Path
    history: dict
    seconds: float


def save_run_bundle(run_dir: str | Path, config: Config, prepared, heads) -> Path:
    """Save a trained run's bundle, `run_dir/bundle` (`helpers.bundle.save_bundle`), with a
    concept decoder's `consensus.npz` (its training captions, for re-ranking and for the
    `ConceptLexicon` of French and German) copied beside it. `train_run` and notebook 2 both
    save through it: a bundle without that file captions with plain beam search.

    Returns:
        The bundle folder.
    """
    run_dir = Path(run_dir)
    bundle_dir = bundle.save_bundle(run_dir / "bundle", config, prepared.vocabulary, prepared.synset_vocabulary,
                                    prepared.encoder, heads)
    if (run_dir / CONSENSUS_FILE).is_file():
        temporary = bundle_dir / f".{CONSENSUS_FILE}.tmp"
        shutil.copyfile(run_dir / CONSENSUS_FILE, temporary)
        os.replace(temporary, bundle_dir / CONSENSUS_FILE)
        (bundle_dir / LEGACY_CONSENSUS_FILE).unlink(missing_ok=True)     # an earlier version's, now replaced
    return bundle_dir


def train_run(config: Config, run_dir: str | Path, strategy: str | tf.distribute.Strategy | None = None,
              callbacks: Sequence = (),
              live_plot: bool = True, verbose: int | str = "auto") -> TrainResult:
    """Prepare (vocabularies, encoder, features), train both heads, save `run_dir/bundle`.

    Resumes a stopped run. Returns a `TrainResult`.
    """
    started = time.perf_counter()
    run_dir = Path(run_dir)
    distribution = get_strategy(strategy or config.strategy)    # before any TensorFlow operation
    prepared = prepare(config, run_dir, verbose=verbose if verbose != "auto" else 1)
    heads, history = fit(prepared, distribution, callbacks, live_plot, verbose)
    bundle_dir = run_dir / "bundle"
    seconds = time.perf_counter() - started
    if not is_chief(distribution):      # the same weights as the chief's: it saves the bundle
        print(f"run {run_dir}: trained as worker {distribution.cluster_resolver.task_id}; the chief "
              f"saves the bundle ({seconds:.0f} s in all)")
        return TrainResult(run_dir, bundle_dir, history, seconds)
    save_run_bundle(run_dir, config, prepared, heads)
    seconds = time.perf_counter() - started
    print(f"run {run_dir}: bundle saved to {bundle_dir} ({seconds:.0f} s in all)")
    return TrainResult(run_dir, bundle_dir, history, seconds)


def read_history(run_dir: str | Path):
    """`pandas.DataFrame` of `history.csv` (one row per epoch) of a run."""
    import pandas

    return pandas.read_csv(Path(run_dir) / "history.csv")
