"""Captions for real photos from detected concepts: the concept decoder against a template, retrieval and its oracle.

    python -m bench.real_captions                   # the 159 annotated coco-mini photos, runs/concepts
    python -m bench.real_captions --run NAME        # another concept-decoder run

On the 159 annotated coco-mini photos (80 train2017, 79 val2017; their official 5 captions each
as references), in one run, scored by `helpers.metrics.evaluate_captions` (BLEU-4, METEOR,
ROUGE-L, CIDEr, equal to the coco-caption toolkit):

* (i) **template** from the predicted concepts: "a person, two dogs and a frisbee" (the three
  most confident, with their counts);
* (ii) **retrieval**: a caption of the training image whose concept set best matches the
  predicted one (Jaccard over synsets; ties: the image with fewer concepts, then the lower id),
  its first caption;
* (ii-b) **consensus retrieval** (Devlin et al. 2015): of the training captions of the 20 images
  whose concepts best match, the one most like the others (`ConsensusIndex`, the decoder's own
  index; its words as the decoder's vocabulary writes them), a stronger baseline than (ii);
* (iii-a) **the concept decoder, beam search only** on the predicted concepts (`--model
  pretrained`: detector + ImageNet hierarchy, `ConceptCaptioner.concepts`), beam width 3;
* (iii) **the concept decoder as `--model pretrained` uses it**: beam width 6 and consensus
  re-ranking of its 6 captions (`ConsensusIndex`, when the run has `consensus.npz`;
  `CONSENSUS_CANDIDATES`, chosen on train2017);
* (iii-s) (iii) without the main-subject rules (`_naming_the_subject`: English captions name the
  most confident concept when the decoder writes it at most `SUBJECT_MAX_LOSS` less likely; and
  where it still does not, a subject of at least `SUBJECT_TEMPLATE_MIN_CONFIDENCE` gets the template);
* (iii-g) (iii) with words that state a sex allowed (`caption_concept_sets(gendered=True)`:
  "man", "woman"; by default the search never writes one, since no concept says a sex);
* (iii-p) (iii) with the decoder's other step precision (`AttentionDecoder.step_dtype`: the
  default is bfloat16 products where the CPU has them natively, float32 elsewhere);
* (iii-b) the same with 8 candidates (the previous default);
* (iv) **oracle**: (iii) fed each photo's ground-truth COCO instances (categories with
  their counts, instances of at least 1 % of the photo, confidence 1): the decoder's own ceiling.

Beside the metrics, "main subject named": of the photos whose most confident predicted concept
(mapped into the decoder's concept vocabulary) has a confidence of at least 0.5
(`subject_concept`), those whose caption names it (`names_concept`: itself or a kind of it).

Retrieval searches the decoder's own training text (`$PHOTO_CAPTIONS_TEXT`, the benchmark photos
excluded). train2017 photos were used to measure the tagger noise the decoder is trained with
(`bench/concept_noise.py`), so they are reported apart from the held-out val2017 ones.

Also, on the real photos of `examples/album`: each photo's caption (`--model pretrained`), and
the time of `predict` with captions against tags only (the same predictor, side by side after a
warm-up), on that album, on the 239 coco-mini photos (640 px) and on 64 of them upscaled to
12 MP as a camera writes them (the album a user tags; decoding them costs more, captions the same);
and on examples/album again with the other step precision. Then what a user waits for on
examples/album: the whole `tag-album` command, tags only and with `--captions` (`command_time`;
start-up and models included, so the small album's fixed cost of a beam search, about 30 ms of
per-step work whatever the photos, weighs as it does for the user).

Targets: (iii) CIDEr >= 0.60 on all 159 photos and >= 2x (ii) in the same run; captioning adds
<= 20 % to the tags-only album time.
Writes `bench/results/real_captions.{md,json}`.
"""

from __future__ import annotations

import contextlib
import json
import time
import unittest.mock

import bench
from bench.concept_noise import fused_predictions
from bench.real_photos import COCO_MINI, RESULTS_DIR, SPLITS, load_photos

METRICS = ("BLEU-4", "METEOR", "ROUGE-L", "CIDEr")


def nearest_captions(concept_sets, training) -> list[str]:
    """Retrieval: per concept set, the caption of the training item whose synsets best match it
    (Jaccard; ties: fewer synsets, then training order).

    Args:
        concept_sets: per photo, its `Concept`s.
        training: `(synsets frozenset, caption)` per training item, in a fixed order.
    """
    captions = []
    for concepts in concept_sets:
        wanted = {c.synset for c in concepts}

        def rank(position, wanted=wanted):
            synsets = training[position][0]
            union = len(wanted | synsets)
            return (-(len(wanted & synsets) / union if union else 0.0), len(synsets), position)

        captions.append(training[min(range(len(training)), key=rank)][1])
    return captions


def retrieval_captions(concept_sets) -> list[str]:
    """(ii): per photo, the first caption of the training image whose concepts best match (Jaccard)."""
    from helpers.data.caption_text import caption_text_sources, excluded_image_ids, excluded_sources, load_caption_text
    from helpers.wordnet.concepts import image_concepts
    from helpers.wordnet.synsets import SynsetMapper

    records = load_caption_text(caption_text_sources(), excluded_image_ids(excluded_sources()))  # by image id
    mapper = SynsetMapper()
    return nearest_captions(concept_sets, [(frozenset(c.synset for c in image_concepts(r.captions, mapper)),
                                            r.captions[0]) for r in records])


def consensus_retrieval(bundle, consensus, concept_sets) -> list[str]:
    """(ii-b): per concept set, the training caption of its `consensus` neighbours with the
    highest consensus score (Devlin et al. 2015), decoded with the bundle's vocabulary."""
    import numpy as np

    captions = []
    for concepts in concept_sets:
        pairs = bundle.synset_vocabulary.encode(concepts, bundle.config.max_concepts)[:, [0, 2]]
        candidates = [c for image in consensus.nearest_images(pairs) for c in consensus.captions[image]]
        best = int(np.argmax(consensus.scores(pairs, candidates))) if candidates else None
        captions.append("a photo" if best is None else bundle.vocabulary.decode(candidates[best]))
    return captions


def album_time(predictor, photos, rounds: int = 3) -> tuple[list, dict]:
    """`(predictions with captions, {"photos", "tags_s", "captions_s", "ratio"})`: the median
    seconds of `predict` tags only and with captions, alternated, after one warm-up of each."""
    import statistics

    times: dict[bool, list[float]] = {False: [], True: []}
    for round_ in range(rounds + 1):
        for captions in (False, True):
            started = time.perf_counter()
            predictions = predictor.predict(photos, captions=captions, progress=False)
            if round_:
                times[captions].append(time.perf_counter() - started)
    tags, with_captions = statistics.median(times[False]), statistics.median(times[True])
    return predictions, {"photos": len(photos), "tags_s": round(tags, 3), "captions_s": round(with_captions, 3),
                         "ratio": round(with_captions / tags, 3)}


def other_precision(step_dtype: str) -> str:
    """The step matmul dtype that is not the default here (`AttentionDecoder.step_dtype`)."""
    return "float32" if step_dtype == "bfloat16" else "bfloat16"


@contextlib.contextmanager
def other_step_precision(decoder):
    """`decoder`'s steps in the precision that is not its default here (`other_precision`),
    yielded; its `step_dtype` is restored after."""
    default = decoder.step_dtype
    decoder.step_dtype = other_precision(decoder.resolved_step_dtype())
    try:
        yield decoder.step_dtype
    finally:
        decoder.step_dtype = default


def command_time(album, rounds: int = 2) -> dict:
    """What a user waits for: the whole `python -m helpers tag-album --model pretrained --album-dir
    ALBUM --no-update --no-cache` (start-up, models, photos; writes nothing), tags only and with
    `--captions`, alternated, after one discarded run of each (the disk cache warm).

    Returns:
        `{"photos", "tags_s", "captions_s", "ratio"}`: median wall seconds of each.
    """
    import os
    import statistics
    import subprocess
    import sys

    from helpers.config import PROJECT_ROOT
    from helpers.data.images import is_image_file

    command = [sys.executable, "-m", "helpers", "tag-album", "--model", "pretrained", "--album-dir", str(album),
               "--no-update", "--no-cache"]
    times: dict[bool, list[float]] = {False: [], True: []}
    for round_ in range(rounds + 1):
        for captions in (False, True):
            started = time.perf_counter()
            subprocess.run(command + ["--captions"] * captions, cwd=PROJECT_ROOT, env=os.environ, check=True,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            if round_:
                times[captions].append(time.perf_counter() - started)
    tags, with_captions = statistics.median(times[False]), statistics.median(times[True])
    return {"photos": sum(1 for p in album.iterdir() if is_image_file(p)), "tags_s": round(tags, 2),
            "captions_s": round(with_captions, 2), "ratio": round(with_captions / tags, 3)}


def album_captions_and_time(run: str) -> tuple[list[str], list[str], dict]:
    """`(photo names, captions, timing)` of examples/album, `timing["coco-mini"]`: the same
    measure on the 239 JPEGs of coco-mini (640 px, an album of a more usual size), and
    `timing["camera album"]`: on 64 of them upscaled to 12 MP (`bench.album_speed`), what a
    camera or phone writes."""
    import tempfile
    from pathlib import Path

    from bench.album_speed import make_camera_album
    from helpers.config import PROJECT_ROOT
    from helpers.data.images import is_image_file
    from helpers.predict.predictors import load_predictor

    photos = sorted(p for p in (PROJECT_ROOT / "examples" / "album").iterdir() if is_image_file(p))
    predictor = load_predictor(model="pretrained", concepts=run)
    predictions, timing = album_time(predictor, photos)
    decoder = predictor.bundle.decoder
    timing["step_dtype"] = decoder.resolved_step_dtype()
    with other_step_precision(decoder) as step_dtype:                  # side by side
        _, timing["other precision"] = album_time(predictor, photos)
    timing["other precision"]["step_dtype"] = step_dtype
    _, timing["coco-mini"] = album_time(predictor, load_photos()[1], rounds=3)
    with tempfile.TemporaryDirectory(prefix="real_captions_") as temporary:
        camera = make_camera_album(Path(temporary) / "album", 64, COCO_MINI / "val2017")
        _, timing["camera album"] = album_time(predictor, camera, rounds=3)
    # the command finds runs/concepts itself: measured for that run only
    timing["command"] = command_time(photos[0].parent) if run == "concepts" else None
    return [p.name for p in photos], [p.caption for p in predictions], timing


def run(quick: bool = False, run: str = "concepts", beam_width: int = 3) -> dict:
    from helpers.bundle import load_bundle
    from helpers.config import resolve_bundle_dir
    from helpers.data.caption_text import load_coco_captions
    from helpers.metrics import evaluate_captions
    from helpers.predict import concept_captions
    from helpers.predict.concept_captions import (
        CONSENSUS_CANDIDATES,
        caption_concept_sets,
        caption_texts,
        load_consensus,
        main_subjects,
        names_concept,
        subject_concept,
        template_caption,
    )
    from helpers.predict.concept_captions import concept_name as _name
    from helpers.predict.prediction import DETECTION_MIN_SCORE
    from helpers.wordnet.concepts import Concept, predicted_concepts
    from helpers.wordnet.senses import COCO_CATEGORY_SYNSETS

    started = time.perf_counter()
    records, _ = load_photos()
    predictions = fused_predictions(records)
    predicted = [predicted_concepts(p["detections"], p["tags"], DETECTION_MIN_SCORE, p["probabilities"])
                 for p in predictions]
    instances = {(split, r.image_id): r.instance_counts for split in SPLITS
                 for r in load_coco_captions(COCO_MINI / "annotations" / f"captions_{split}.json")}
    oracle = [[Concept(COCO_CATEGORY_SYNSETS[name], 1.0, count)
               for name, count in sorted(instances[(r.split, r.image_id)].items(), key=lambda item: -item[1])]
              for r in records]
    bundle = load_bundle(resolve_bundle_dir(run))
    consensus = load_consensus(bundle)

    def decode(concept_sets, index=None, candidates=CONSENSUS_CANDIDATES, gendered=False, subject=True):
        # subject=False: no set has a main subject, the captions as before `_naming_the_subject`
        with (contextlib.nullcontext() if subject else
              unittest.mock.patch.object(concept_captions, "SUBJECT_MIN_CONFIDENCE", 2.0)):
            beams = caption_concept_sets(bundle, concept_sets, beam_width=beam_width, consensus=index,
                                         candidates=candidates, gendered=gendered)
        subjects = main_subjects(bundle, concept_sets) if subject else None
        return [captions[0][0] for captions in caption_texts(bundle.vocabulary, concept_sets, beams,
                                                             subjects=subjects)]

    methods = {"(i) template": [template_caption(c) for c in predicted],
               "(ii) retrieval (Jaccard)": retrieval_captions(predicted)}
    if consensus is not None:
        methods["(ii-b) consensus retrieval"] = consensus_retrieval(bundle, consensus, predicted)
    methods["(iii-a) concept decoder, beam search only"] = decode(predicted)
    methods["(iii) concept decoder"] = decode(predicted, consensus)
    methods["(iii-s) concept decoder, main subject not required"] = decode(predicted, consensus, subject=False)
    methods["(iii-g) concept decoder, sex words allowed"] = decode(predicted, consensus, gendered=True)
    precision = bundle.decoder.resolved_step_dtype()
    with other_step_precision(bundle.decoder) as step_dtype:
        methods[f"(iii-p) concept decoder, {step_dtype} steps"] = decode(predicted, consensus)
    if consensus is not None:
        methods["(iii-b) concept decoder, beam 8 + consensus"] = decode(predicted, consensus, candidates=8)
    methods["(iv) oracle: decoder on COCO instances"] = decode(oracle, consensus)
    # each photo's main subject: its most confident concept mapped into the decoder's vocabulary
    # (what the decoder is given; `subject_concept`), named by the caption or not (`names_concept`)
    subjects = [subject_concept(bundle.synset_vocabulary.decode(bundle.synset_vocabulary.encode(
        concepts, bundle.config.max_concepts))) for concepts in predicted]
    table: dict[str, dict[str, dict]] = {}
    for method, captions in methods.items():
        table[method] = {}
        for split in ("all", *SPLITS):
            annotations = {"images": [], "annotations": []}
            results = []
            for index, record in enumerate(records):
                if split not in ("all", record.split):
                    continue
                key = index + 1            # one id per photo: train and val ids never collide here
                annotations["images"].append({"id": key})
                annotations["annotations"] += [{"id": len(annotations["annotations"]) + n, "image_id": key,
                                                "caption": caption} for n, caption in enumerate(record.captions)]
                results.append({"image_id": key, "caption": captions[index]})
            scores = evaluate_captions(annotations, results, spice=False).scores
            named = [names_concept(captions[i], subject.synset) for i, record in enumerate(records)
                     if split in ("all", record.split) and (subject := subjects[i]) is not None]
            table[method][split] = {"photos": len(results), **{m: scores[m] for m in METRICS},
                                    "subject named": f"{sum(named)}/{len(named)}"}
    album, album_captions, timing = album_captions_and_time(run)
    decoder = table["(iii) concept decoder"]["all"]["CIDEr"]
    retrieval = table["(ii) retrieval (Jaccard)"]["all"]["CIDEr"]
    targets = {"(iii) CIDEr >= 0.60": decoder >= 0.60, "(iii) >= 2x (ii)": decoder >= 2 * retrieval,
               "captions add <= 20 % to album time (examples/album)": timing["ratio"] <= 1.2,
               "captions add <= 20 % to album time (12 MP camera album)": timing["camera album"]["ratio"] <= 1.2,
               "captions add <= 20 % to album time (coco-mini, 640 px)": timing["coco-mini"]["ratio"] <= 1.2}
    if timing["command"] is not None:
        command_target = "captions add <= 20 % to the whole tag-album command (examples/album)"
        targets[command_target] = timing["command"]["ratio"] <= 1.2
    seconds = time.perf_counter() - started
    lines = ["| method | photos | BLEU-4 | METEOR | ROUGE-L | CIDEr | main subject named |",
             "|---|---|---|---|---|---|---|"]
    for method, splits in table.items():
        for split in ("all", *SPLITS):
            r = splits[split]
            lines.append(f"| {method}{'' if split == 'all' else f' ({split})'} | {r['photos']} | "
                         + " | ".join(f"{r[m]:.3f}" for m in METRICS) + f" | {r['subject named']} |")
    examples = ["", "| photo | concepts (predicted) | (iii) caption | first reference |", "|---|---|---|---|"]
    for index in range(0, len(records), max(1, len(records) // 12)):
        concepts = ", ".join(f"{_name(c.synset)}{f' x{c.count}' if c.count > 1 else ''} {c.confidence:.2f}"
                             for c in predicted[index][:5])
        examples.append(f"| {records[index].split}/{records[index].file_name} | {concepts} | "
                        f"{methods['(iii) concept decoder'][index]} | {records[index].captions[0]} |")
    text = ("\n".join(lines) + f"\n\nRatio (iii)/(ii) CIDEr: {decoder / max(retrieval, 1e-9):.2f}. Targets: "
            + ", ".join(f"{name}: {'yes' if ok else 'no'}" for name, ok in targets.items())
            + "\n\nAlbum time, tags only vs with captions (medians): " + "; ".join(
                f"{name} ({t['photos']} photos) {t['tags_s']:.2f} s vs {t['captions_s']:.2f} s: x{t['ratio']:.3f}"
                for name, t in (("examples/album", timing), ("coco-mini", timing["coco-mini"]),
                                ("12 MP camera album", timing["camera album"]),
                                (f"examples/album, {timing['other precision']['step_dtype']} steps",
                                 timing["other precision"])))
            + f" (steps in {precision}: `AttentionDecoder.step_dtype`)"
            + ("" if timing["command"] is None else
               "\n\nThe whole command, `python -m helpers tag-album --model pretrained --album-dir examples/album "
               "--no-update --no-cache` without and with `--captions` (medians of 2): "
               + "{tags_s:.2f} s vs {captions_s:.2f} s: x{ratio:.3f}".format(**timing["command"]))
            + "\n\n| photo | caption |\n|---|---|\n"
            + "\n".join(f"| {name} | {caption} |" for name, caption in zip(album, album_captions))
            + "\n" + "\n".join(examples) + f"\n\n(run {bundle.path}, beam width {beam_width}, "
            + ("no consensus index" if consensus is None else f"consensus re-ranking of {CONSENSUS_CANDIDATES}")
            + f"; {seconds:.0f} s)\n")
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    (RESULTS_DIR / "real_captions.md").write_text(text, encoding="utf-8")
    print(text)
    results = {"table": table, "targets": targets, "seconds": round(seconds, 1), "album_time": timing,
               "album_captions": dict(zip(album, album_captions)),
               "captions": {name: captions for name, captions in methods.items()}}
    (RESULTS_DIR / "real_captions.json").write_text(json.dumps(results, indent=1) + "\n", encoding="utf-8")
    return results


def main(argv: list[str] | None = None) -> int:
    return bench.command_line(__doc__, run, argv, quick="the same run (accepted for python -m bench)",
                              options=[bench.option("--run", default="concepts", help="concept-decoder run (concepts)"),
                                       bench.option("--beam-width", type=int, default=3, help="beam width (3)")],
                              print_result=False)


if __name__ == "__main__":
    raise SystemExit(main())
