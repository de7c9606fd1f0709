"""Command line: `python -m helpers <command> ...` (run `python -m helpers --help`).

Every sub-command is declared here, at the top of the package: the modules below do the work and
know nothing of argparse. Modules that import TensorFlow (training, inference, evaluation) are
imported inside the command that needs them, so `make-sample` and `score` start in a second.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

from helpers import metrics
from helpers.album import tagging as album
from helpers.album import xmp
from helpers.config import CAPTION_TEXT, CONCEPT_RUN, PRETRAINED_MODELS, SAMPLE_DIR, Config, resolve_run_dir
from helpers.data import sample
from helpers.predict import photo_cache
from helpers.wordnet import hierarchy
from helpers.wordnet.keywords import available_languages

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
def _config_type(field: dataclasses.Field):
    """argparse `type` of a `Config` field from its annotation ("int | None" -> int)."""
    names = {"int": int, "float": float, "str": str, "bool": bool}
    kind = names[str(field.type).split("|")[0].strip()]
    if kind is str and "None" in str(field.type):
        return lambda text: None if text.lower() == "none" else text
    return kind


def add_config_options(parser: argparse.ArgumentParser) -> None:
    """One `--field-name` option per `Config` field, with the field's own help (the one home of
    every training setting); unset options keep the run's saved value or the dataset's default."""
    group = parser.add_argument_group("training settings (helpers.config.Config)")
    for field in dataclasses.fields(Config):
        option = "--" + field.name.replace("_", "-")
        kind = _config_type(field)
        # SUPPRESS: an option not given is absent from the namespace, so "--weights none" (None)
        # is a change like any other value.
        if kind is bool:
            group.add_argument(option, action=argparse.BooleanOptionalAction, default=argparse.SUPPRESS,
                               help=field.metadata["help"])
        else:
            group.add_argument(option, type=kind, default=argparse.SUPPRESS, metavar=field.name.upper(),
                               help=field.metadata["help"])


def config_from_args(args: argparse.Namespace) -> Config:
    """The run's saved config.json (when it exists; otherwise `Config.for_dataset`) updated by the
    options given."""
    run_dir = resolve_run_dir(args.run)
    changes = {field.name: getattr(args, field.name) for field in dataclasses.fields(Config)
               if hasattr(args, field.name)}
    if (run_dir / "config.json").is_file():
        return dataclasses.replace(Config.load(run_dir / "config.json"), **changes)
    return Config.for_dataset(changes.pop("data_dir", SAMPLE_DIR), **changes)


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


# --- options shared by caption, tag-album and evaluate ------------------------------------------
NO_MODEL = "give --run NAME (a trained run) or --model pretrained (no training)"


def add_decoding_options(parser: argparse.ArgumentParser) -> None:
    """`--beam-width` and `--batch-size`: how captions are searched, photos per model batch."""
    parser.add_argument("--beam-width", type=int, default=3, help="beam search width (3; 1 = greedy)")
    parser.add_argument("--batch-size", type=int, default=32, help="photos per model batch (32)")


def add_prediction_options(parser: argparse.ArgumentParser) -> None:
    """The model (`--run`, `--model`), its keywords (`--lang`, `--nb-keywords`, `--min-proba`) and
    `add_decoding_options`: the options of every command that predicts."""
    parser.add_argument("--run", help="a trained run: name (under runs/), run folder or bundle folder")
    parser.add_argument("--model", choices=PRETRAINED_MODELS, default=None,
                        help="'pretrained': people, objects and counts from a COCO detector fused with the "
                             "ImageNet classifier through WordNet, no training ('imagenet': the same, its "
                             "former name); combined with --run when both are given")
    parser.add_argument("--lang", default="eng", help="keyword language, Open Multilingual Wordnet code (eng)")
    parser.add_argument("--nb-keywords", type=int, default=5, help="keywords per photo (5)")
    parser.add_argument("--min-proba", type=float, default=None,
                        help="minimum keyword probability, 0..1 (default: the model's own, 0 for a trained "
                             f"run, {hierarchy.MIN_PROBA} for --model pretrained)")
    parser.add_argument("--gendered-captions", action="store_true",
                        help="let captions of --model pretrained say 'man', 'femme', 'Mann' as the decoder "
                             "guesses them (the concepts never say a sex); default: 'a person', in every language")
    add_decoding_options(parser)


def _add_album_options(parser: argparse.ArgumentParser) -> None:
    """Every `tag-album` option (the README's album.ini section explains the defaults)."""
    add_prediction_options(parser)
    add = parser.add_argument
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--album-dir", type=Path, help="album folder")
    where.add_argument("--album-ini", type=Path, help="an album.ini file (its folder is the album)")
    add("--captions", action="store_true", help="best caption as description where there is none")
    add("--merge-into-tags", action=argparse.BooleanOptionalAction, default=True,
        help="keywords into tags, which MyPhotoShare searches (default); "
             "--no-merge-into-tags: into auto_tags only, as mps_autotags")
    add("--xmp", action="store_true", help="also write XMP sidecars (dc:subject and "
                                           "lr:hierarchicalSubject; needs ExifTool)")
    add("--sidecar-name", choices=xmp.SIDECAR_NAMINGS, default=xmp.SIDECAR_NAMINGS[0],
        help="photo.jpg.xmp (darktable, digiKam, Immich; default) or photo.xmp (Lightroom)")
    add("--no-album-ini", action="store_true", help="leave album.ini alone (--xmp: sidecars only)")
    add("--untag", action="store_true",
        help="remove exactly what tag-album added (album.ini; sidecars with --xmp); no model")
    add("--recursive", action="store_true", help="tag every album folder below --album-dir")
    add("--no-update", action="store_true", help="preview: print the changes, write nothing")
    add("--cache", type=Path, default=None,
        help=f"prediction cache file (default: {photo_cache.default_cache_path()})")
    add("--no-cache", action="store_true", help="predict every photo (temporary cache)")


# --- caption, evaluate, tag-album -------------------------------------------------------------


def load_predictor(args: argparse.Namespace):
    """The predictor that `--run` / `--model` name (see `helpers.predict.predictors.load_predictor`)."""
    from helpers.predict import predictors as inference  # imported here: TensorFlow

    return inference.load_predictor(run=args.run, model=args.model,
                                    gendered=getattr(args, "gendered_captions", False))


def say_if_no_captions(predictor, wanted: bool) -> None:
    """Say once, when captions are wanted, that the pretrained models have no concept decoder to
    write them (and how to train one); nothing otherwise."""
    from helpers.predict.fused import PretrainedTagger  # imported here: TensorFlow

    if wanted and isinstance(predictor, PretrainedTagger):
        print(f"no caption decoder for --model pretrained (runs/{CONCEPT_RUN}): keywords only. Train one "
              f"from caption text in about 15 minutes: python -m helpers train --run {CONCEPT_RUN} "
              f"--data-dir {CAPTION_TEXT} (with PHOTO_CAPTIONS_TEXT naming COCO's captions_train2017.json "
              f"or Flickr8k.token.txt), or run make demo", file=sys.stderr)


def _caption(args: argparse.Namespace) -> int:
    if args.run is None and args.model is None:
        print(f"caption: {NO_MODEL}")
        return 2
    predictor = load_predictor(args)
    say_if_no_captions(predictor, not args.no_captions)
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


def tag_album_command(args: argparse.Namespace, load=None) -> int:
    """Run `tag-album`; the model (`load(args)`, default `load_predictor`) is loaded only after
    the cheap checks (folders, language, ExifTool), and never for `--untag`.

    Returns:
        0 when something was done, 1 when nothing could be (read-only album...), 2 for a usage
        error (message printed).
    """
    common = dict(album_dir=args.album_dir, album_ini=args.album_ini, recursive=args.recursive,
                  update=not args.no_update, xmp_sidecars=args.xmp,
                  album_ini_output=not args.no_album_ini)
    try:
        if args.untag:
            summary = album.untag_album(**common)
        else:
            if args.run is None and args.model is None:
                raise ValueError(NO_MODEL)
            # a language without wordnet may still have a caption decoder: tag_album checks it
            # once the model is loaded (English keywords, captions in the language)
            keyword_lang = None if args.captions and args.lang not in available_languages() else args.lang
            album.check_options(args.album_dir, args.album_ini, args.recursive, keyword_lang,
                                args.nb_keywords, args.min_proba or 0.0, args.xmp, args.sidecar_name)
            predictor = (load or load_predictor)(args)
            say_if_no_captions(predictor, args.captions)
            min_proba = predictor.default_min_proba if args.min_proba is None else args.min_proba
            cache = None if args.no_cache else (args.cache or photo_cache.default_cache_path())
            summary = album.tag_album(predictor, lang=args.lang, nb_keywords=args.nb_keywords,
                                min_proba=min_proba, captions=args.captions,
                                merge_into_tags=args.merge_into_tags, beam_width=args.beam_width,
                                batch_size=args.batch_size, sidecar_name=args.sidecar_name,
                                cache=cache, **common)
    except (ValueError, FileNotFoundError, xmp.ExifToolMissing) as error:
        print(f"tag-album: {error}")
        return 2
    if args.no_update and summary.diff:
        print(summary.diff)
    print(summary.report())
    return 0 if summary.anything_done else 1




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
        add_config_options(p)
        p.set_defaults(func=function)

    p = commands.add_parser("caption", help="caption and tag photos (a trained run, or the "
                                            "pretrained ImageNet tagger with no training)")
    p.add_argument("images", nargs="+", help="photo files")
    add_prediction_options(p)
    p.add_argument("--top-n", type=int, default=3, help="captions per photo (3)")
    p.add_argument("--no-captions", action="store_true", help="keywords only (no beam search)")
    p.set_defaults(func=_caption)

    p = commands.add_parser("evaluate", help="caption metrics and tag metrics of a run on a split")
    p.add_argument("--run", required=True, help="run name (under runs/) or run folder")
    p.add_argument("--split", default="val", help="'val', 'train' or a split name such as val2017")
    add_decoding_options(p)
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
    _add_album_options(p)
    p.set_defaults(func=tag_album_command)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    return int(args.func(args) or 0)
