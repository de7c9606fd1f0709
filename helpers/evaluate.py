"""Score a trained run on one of its splits: COCO caption metrics and tagging metrics.

Captions go through the coco-caption toolkit's scorers (`helpers.metrics`); tags are scored
against each image's tag targets exactly as training built them (`helpers.wordnet.synsets.records_synsets`,
saved by `prepare` as `<run>/image_synsets.json`).

Command line: `python -m helpers evaluate --run runs/<name> --split val`.
"""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path
from typing import Sequence

import numpy as np

from helpers import metrics as metrics_module
from helpers.config import resolve_run_dir
from helpers.data.coco import load_coco
from helpers.predict.prediction import Prediction
from helpers.predict.predictors import Captioner
from helpers.training.train import load_image_synsets


@dataclasses.dataclass
class Evaluation:
    """A run scored on one split (see `evaluate_run`).

    Attributes:
        metrics: `{"captions": {metric: score}, "captions_unavailable": {metric: reason},
            "tags": {metric: value}, "num_images", "failed", "split", "beam_width", "seconds", ...}`.
        records: the split's `helpers.data.coco.ImageRecord`s that were captioned (in order).
        predictions: one `Prediction` per record.
        y_true: {0, 1} `[N, S]` ground-truth synsets (as training builds them) of the readable photos.
        y_score: float32 `[N, S]` predicted synset probabilities of the same photos.
        results_path: the COCO results JSON written; metrics_path: the metrics JSON written.
    """

    metrics: dict
    records: list
    predictions: list
    y_true: np.ndarray
    y_score: np.ndarray
    results_path: Path
    metrics_path: Path

    def table(self) -> str:
        """Caption and tag metrics as one aligned text table."""
        rows = {**self.metrics["captions"], **{f"tags {k}": v for k, v in self.metrics["tags"].items()}}
        return metrics_module.format_table(rows, self.metrics.get("captions_unavailable"))

    def least_confident(self, count: int = 8) -> list[tuple[object, Prediction]]:
        """`(record, prediction)` of the `count` readable photos whose best caption is least probable
        per word (geometric mean of its token probabilities), least confident first."""
        scored = [(record, prediction) for record, prediction in zip(self.records, self.predictions)
                  if prediction.ok and prediction.hypotheses]
        scored.sort(key=lambda pair: pair[1].hypotheses[0].word_log_probability)
        return scored[:count]


def _split_name(config, split: str) -> str:
    return {"val": config.val_split, "train": config.train_split}.get(split, split)


def evaluate_run(run_dir, split: str = "val", beam_width: int = 3, batch_size: int = 32,
                 max_images: int | None = None, threshold: float = 0.5, ks: Sequence[int] = (1, 3, 5),
                 out=None, nb_keywords: int | None = 5, lang: str = "eng", captioner: Captioner | None = None,
                 progress: bool = True) -> Evaluation:
    """Caption and tag a split of a run's dataset and score both.

    Captions: a COCO results file `run_dir/captions_<split>_results.json` scored by
    `helpers.metrics.evaluate_captions` against `<data_dir>/annotations/captions_<split>.json`.
    Tags: predicted synset probabilities against each image's synsets built exactly as training
    built its targets (`helpers.training.train.load_image_synsets`: the run's saved `image_synsets.json`): mAP,
    micro/macro F1 at `threshold`, P@k.

    Args:
        run_dir: run folder (with `config.json` and `bundle/`) or a run name under `runs/`.
        split: "val", "train" (the run's splits) or a split name ("val2017").
        beam_width: beam search width.
        batch_size: photos per model batch.
        max_images: only the first N images of the split (default: the run's `max_val_images` for
            the val split, else all).
        threshold, ks: tag decision threshold and the k of precision@k.
        out: metrics JSON path (default `run_dir/metrics.json` for the run's validation split,
            `run_dir/metrics_<split>.json` for another split).
        nb_keywords, lang: tags kept in each `Prediction.tags` (for display; the metrics use every
            synset probability).
        captioner: reuse an already loaded `Captioner` of this run.
        progress: progress bar.

    Returns:
        An `Evaluation`.

    Raises:
        FileNotFoundError: no bundle / config in `run_dir`.
        ValueError: no photo of the split could be read.
    """
    started = time.perf_counter()
    run_dir = resolve_run_dir(run_dir)
    captioner = captioner or Captioner.from_bundle(run_dir)
    config = captioner.config
    split_name = _split_name(config, split)
    if max_images is None and split_name == config.val_split:
        max_images = config.max_val_images
    records = load_coco(config.data_dir, split_name)[:max_images]
    predictions = captioner.predict([record.path for record in records], beam_width=beam_width,
                                    top_n=1, nb_keywords=nb_keywords, lang=lang, batch_size=batch_size,
                                    progress=progress)
    readable = [(record, prediction) for record, prediction in zip(records, predictions) if prediction.ok]
    if not readable:
        raise ValueError(f"none of the {len(records)} photos of {split_name} in {config.data_dir} could be "
                         f"read (first error: {predictions[0].error if predictions else 'no images'})")

    results = [{"image_id": record.image_id, "caption": prediction.caption} for record, prediction in readable]
    results_path = run_dir / f"captions_{split_name}_results.json"
    results_path.write_text(json.dumps(results) + "\n", encoding="utf-8")
    annotations = Path(config.data_dir) / "annotations" / f"captions_{split_name}.json"
    caption_scores = metrics_module.evaluate_captions(annotations, results)

    synset_vocabulary = captioner.bundle.synset_vocabulary
    image_synsets = load_image_synsets(run_dir, config, [record for record, _ in readable])
    y_true = np.stack([synset_vocabulary.encode(image_synsets[record.image_id]) for record, _ in readable])
    y_score = np.array([[p.synset_probabilities[name] for name in captioner.synset_names]
                        for _, p in readable], dtype=np.float32)
    y_true = (y_true > 0).astype(np.int8)
    if y_true.any():
        tag_scores = metrics_module.tagging_metrics(y_true, y_score, threshold=threshold, ks=ks)
    else:
        tag_scores = {}
    metrics = {
        "run": str(run_dir), "split": split_name, "beam_width": beam_width,
        "num_images": len(readable), "failed": {p.path: p.error for p in predictions if not p.ok},
        "captions": caption_scores.scores, "captions_unavailable": caption_scores.unavailable,
        "tags": tag_scores, "tag_threshold": threshold,
        "tag_synsets_scored": int(y_true.any(axis=0).sum()),  # synsets with a positive image (mAP's classes)
        "results_file": str(results_path),
        "seconds": round(time.perf_counter() - started, 1),
    }
    default_name = "metrics.json" if split_name == config.val_split else f"metrics_{split_name}.json"
    metrics_path = Path(out) if out else run_dir / default_name
    metrics_path.parent.mkdir(parents=True, exist_ok=True)
    metrics_path.write_text(json.dumps(metrics, indent=2) + "\n", encoding="utf-8")
    print(f"evaluated {len(readable)} {split_name} photos ({len(records) - len(readable)} unreadable) in "
          f"{metrics['seconds']:.0f} s; results {results_path}, metrics {metrics_path}")
    return Evaluation(metrics, [r for r, _ in readable], [p for _, p in readable], y_true, y_score,
                      results_path, metrics_path)
