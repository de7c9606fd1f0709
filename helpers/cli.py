"""Command line: `python -m helpers <command> ...` (run `python -m helpers --help`).

Every sub-command is declared here, at the top of the package: the modules below do the work and
know nothing of argparse. Modules that import TensorFlow (training, inference, evaluation) are
imported inside the command that needs them, so `make-sample` and `score` start in a second.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from helpers import metrics
from helpers.album import tagging as album
from helpers.config import SAMPLE_DIR, Config, resolve_run_dir
from helpers.data import sample

# --- make-sample, score: light commands (no TensorFlow) ---------------------------------------


def _make_sample(args: argparse.Namespace) -> int:
    print(sample.make_sample(args.out, seed=args.seed, n_train=args.train, n_val=args.val,
                             n_album=args.album, image_size=args.image_size))
    return 0


def _score(args: argparse.Namespace) -> int:
    evaluation = metrics.evaluate_captions(args.annotations, args.results, spice=False if args.no_spice else None)
    print(f"{evaluation.num_images} images scored in {evaluation.seconds:.1f} s")
    print(evaluation.table())
    if args.out:
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        payload = {"annotations": str(args.annotations), "results": str(args.results), **evaluation.to_dict()}
        out.write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
        print(f"metrics written to {out}")
    return 0


# --- prepare, train ---------------------------------------------------------------------------
_CONFIG_OPTIONS = {  # option -> (Config field, type, help)
    "--data-dir": ("data_dir", str, "COCO-layout dataset folder"),
    "--backbone": ("backbone", str, "encoder backbone (helpers.pretrained.encoders.ENCODERS)"),
    "--weights": ("weights", str, "'imagenet', 'none' or a weights file"),
    "--image-size": ("image_size", int, "encoder input side in pixels"),
    "--decoder": ("decoder", str, "'lstm' or 'attention'"),
    "--min-word-count": ("min_word_count", int, "vocabulary threshold"),
    "--embedding-dim": ("embedding_dim", int, "word-embedding size"),
    "--hidden-dim": ("hidden_dim", int, "LSTM units"),
    "--batch-size": ("batch_size", int, "captions per step"),
    "--epochs": ("epochs", int, "epochs of head training"),
    "--learning-rate": ("learning_rate", float, "peak learning rate"),
    "--tag-loss-weight": ("tag_loss_weight", float, "weight of the tag loss"),
    "--encoder-epochs": ("encoder_epochs", int, "epochs training the encoder on tags first"),
    "--max-train-images": ("max_train_images", int, "cap on training images"),
    "--max-val-images": ("max_val_images", int, "cap on validation images"),
    "--augment-variants": ("augment_variants", int, "augmented copies per training image"),
    "--strategy": ("strategy", str, "'default', 'mirrored' or 'multi_worker'"),
}


def config_from_args(args: argparse.Namespace) -> Config:
    """The run's saved config.json (when it exists) updated by the options given."""
    run_dir = resolve_run_dir(args.run)
    config = Config.load(run_dir / "config.json") if (run_dir / "config.json").is_file() else Config()
    for option, (field, _, _) in _CONFIG_OPTIONS.items():
        value = getattr(args, option[2:].replace("-", "_"), None)
        if value is not None:
            if field == "weights" and value.lower() == "none":
                value = None
            setattr(config, field, value)
    return config


def _prepare(args: argparse.Namespace) -> int:
    from helpers.training import train  # imported here: TensorFlow

    run_dir = resolve_run_dir(args.run)
    prepared = train.prepare(config_from_args(args), run_dir)
    print(f"prepared {run_dir}: {len(prepared.vocabulary)} words, {len(prepared.synset_vocabulary)} synsets, "
          f"{prepared.train_cache.num_rows} + {prepared.val_cache.num_rows} cached feature rows")
    return 0


def _train(args: argparse.Namespace) -> int:
    from helpers.training import train  # imported here: TensorFlow

    result = train.train_run(config_from_args(args), resolve_run_dir(args.run), live_plot=False, verbose=2)
    saved = f"bundle {result.bundle_dir}" if (result.bundle_dir / "bundle.json").is_file() else "no bundle"
    print(f"trained {result.run_dir}: {saved} in {result.seconds:.0f} s")
    return 0


# --- caption, evaluate, tag-album -------------------------------------------------------------


def load_predictor(args: argparse.Namespace):
    """The predictor that `--run` / `--model` name (see `helpers.predict.predictors.load_predictor`)."""
    from helpers.predict import predictors as inference  # imported here: TensorFlow

    return inference.load_predictor(run=getattr(args, "run", None), model=getattr(args, "model", None))


def _caption(args: argparse.Namespace) -> int:
    if args.run is None and args.model is None:
        print("caption: give --run NAME (a trained run) or --model imagenet (no training)")
        return 2
    predictor = load_predictor(args)
    min_proba = predictor.default_min_proba if args.min_proba is None else args.min_proba
    predictions = predictor.predict(args.images, beam_width=args.beam_width,
                                    top_n=min(args.top_n, args.beam_width), nb_keywords=args.nb_keywords,
                                    min_proba=min_proba, lang=args.lang, batch_size=args.batch_size,
                                    progress=len(args.images) > 1, captions=not args.no_captions)
    for prediction in predictions:
        print(prediction.format())
    failed = sum(not p.ok for p in predictions)
    return 1 if failed == len(predictions) else 0


def _evaluate(args: argparse.Namespace) -> int:
    from helpers.evaluate import evaluate_run  # imported here: TensorFlow

    evaluation = evaluate_run(args.run, split=args.split, beam_width=args.beam_width,
                              batch_size=args.batch_size, max_images=args.max_images, out=args.out)
    print(evaluation.table())
    return 0


def _tag_album(args: argparse.Namespace) -> int:
    return album.run_cli(args, load_predictor)


def build_parser() -> argparse.ArgumentParser:
    """The `python -m helpers` argument parser with every sub-command."""
    parser = argparse.ArgumentParser(prog="python -m helpers",
                                     description="Caption and tag photos; tag MyPhotoShare albums.")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = commands.add_parser("make-sample", help="write the small shapes dataset (COCO, Visual Genome "
                                                "and album formats)")
    p.add_argument("--out", default=str(SAMPLE_DIR), help="output folder (default: %(default)s)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default: %(default)s)")
    p.add_argument("--train", type=int, default=2000, help="training images (default: %(default)s)")
    p.add_argument("--val", type=int, default=300, help="validation images (default: %(default)s)")
    p.add_argument("--album", type=int, default=24, help="album photos (default: %(default)s)")
    p.add_argument("--image-size", type=int, default=128, help="picture side in pixels (default: %(default)s)")
    p.set_defaults(func=_make_sample)

    for name, function, text in (
            ("prepare", _prepare, "build a run's vocabularies, encoder and feature cache"),
            ("train", _train, "train (or resume) a run and save its bundle")):
        p = commands.add_parser(name, help=text)
        p.add_argument("--run", required=True, help="run name (folder under runs/) or a path")
        for option, (_, kind, option_help) in _CONFIG_OPTIONS.items():
            p.add_argument(option, type=kind, default=None, help=option_help)
        p.set_defaults(func=function)

    p = commands.add_parser("caption", help="caption and tag photos (a trained run, or the "
                                            "pretrained ImageNet tagger with no training)")
    p.add_argument("images", nargs="+", help="photo files")
    p.add_argument("--run", help="run name (under runs/), run folder or bundle folder")
    p.add_argument("--model", choices=["imagenet"], help="'imagenet': keywords from the pretrained "
                   "ImageNet classifier and the WordNet hierarchy, no training (combined with --run "
                   "when both are given)")
    p.add_argument("--beam-width", type=int, default=3, help="beam search width (3; 1 = greedy)")
    p.add_argument("--top-n", type=int, default=3, help="captions per photo (3)")
    p.add_argument("--no-captions", action="store_true", help="keywords only (no beam search)")
    p.add_argument("--nb-keywords", type=int, default=5, help="keywords per photo (5)")
    p.add_argument("--min-proba", type=float, default=None,
                   help="minimum keyword probability (default: the model's own, 0 for a trained run, "
                        f"{album.IMAGENET_MIN_PROBA} for the ImageNet hierarchy)")
    p.add_argument("--lang", default="eng", help="keyword language, Open Multilingual Wordnet code (eng)")
    p.add_argument("--batch-size", type=int, default=32, help="photos per model batch (32)")
    p.set_defaults(func=_caption)

    p = commands.add_parser("evaluate", help="caption metrics and tag metrics of a run on a split")
    p.add_argument("--run", required=True, help="run name (under runs/) or run folder")
    p.add_argument("--split", default="val", help="'val', 'train' or a split name such as val2017")
    p.add_argument("--beam-width", type=int, default=3, help="beam search width (3)")
    p.add_argument("--batch-size", type=int, default=32, help="photos per model batch (32)")
    p.add_argument("--max-images", type=int, default=None, help="only the first N images")
    p.add_argument("--out", help="metrics JSON (default: <run>/metrics.json for the val split, "
                                 "else <run>/metrics_<split>.json)")
    p.set_defaults(func=_evaluate)

    p = commands.add_parser("score", help="COCO caption metrics (BLEU, METEOR, ROUGE-L, CIDEr[, SPICE])")
    p.add_argument("--annotations", required=True, help="COCO captions JSON (references)")
    p.add_argument("--results", required=True, help='results JSON [{"image_id", "caption"}]')
    p.add_argument("--out", help="write the scores as JSON here")
    p.add_argument("--no-spice", action="store_true", help="skip SPICE even when its jars are installed")
    p.set_defaults(func=_score)

    p = commands.add_parser(
        "tag-album", help="write keywords (and captions) into MyPhotoShare album.ini files",
        description="Tag the pictures of a MyPhotoShare album and write the keywords into its "
                    "album.ini, keeping every comment and value of the user. Exit status is "
                    "non-zero only when nothing could be done.")
    album.add_arguments(p)
    p.set_defaults(func=_tag_album)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    return int(args.func(args) or 0)
