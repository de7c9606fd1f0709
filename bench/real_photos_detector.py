"""Keywords on real photos with a COCO detector: the fused predictor against its parts, in one run.

    python -m bench.real_photos_detector     # the 159 annotated coco-mini photos, about a minute

The photos, references and correctness rule are `bench.real_photos`'s: a keyword is correct when
its synset is a reference (the synsets the photo's captions name, and its COCO categories), a
hyponym of one, or a hypernym of one at most 2 levels up. Methods, each with 5 keywords at most:

* (a) **hierarchy only**: `helpers.predict.imagenet.ImageNetTagger` (the previous no-training
  model: EfficientNet-Lite0 + WordNet hierarchy, `specific_keywords`).
* (d) **detector only**: YOLOX-Nano's categories with score >= `DETECTION_MIN_SCORE`, best
  first, as their reviewed synsets (`COCO_CATEGORY_SYNSETS`).
* (e) **naive union**: (d)'s synsets, then (a)'s that are not already there, cut at 5.
* (f) **fused**: `helpers.predict.fused.PretrainedTagger`, the default of `--model pretrained`.
* (f-) **fused without the animal box check** (`PretrainedTagger(verify_below=0)`): what the
  check of uncertain animals on their box (`helpers.predict.fused.verified_detections`) changes.
* (o) **oracle categories**: the photo's annotated COCO categories themselves, as synsets (what a
  perfect detector would give; its precision is 1 by construction, its keywords per photo and
  person figures are the ceiling of (d)).

**Count keywords are judged by the annotated count.** The rule above compares a keyword with the
synsets the captions name, so "people" on a photo whose captions say "a man and a woman" would be
wrong: people.n.01 is neither a hypernym nor a hyponym of man.n.01 but, in WordNet, the *member
holonym* of person.n.01. So a member holonym of an annotated category (people.n.01 for person.n.01)
is also correct when at least 2 instances of that category are annotated, and crowd.n.01 when COCO
annotates a crowd region of one (`iscrowd`: "a large group of objects, e.g. a crowd of people").
These use the photo's instance annotations, never the predictor's own thresholds. Precision@5
with the captions' synsets alone is printed too ("strict").

Also per method: **person recall**: the share of photos annotated with a person of area >= 1 % of
the photo that get person.n.01 or a synset below it (or people.n.01 / crowd.n.01), and the
**person false-positive rate**: the share of photos with no person annotated that get one; and
**COCO-category recall** over all 80 categories (not only those ImageNet can express).

The fusion's constants (`DETECTION_MIN_SCORE`, the count thresholds) were set on the 80 train2017
photos; the 79 val2017 photos are reported apart as the held-out check.

**The animal box check** is printed apart, per split: the animal categories it checks (detected
in [0.3, `VERIFY_BELOW`), with ImageNet classes below them), split by whether COCO annotates the
category on the photo (true) or not (false), and how many of each it keeps and drops. Its
constants were set by looking at the two false animals of `examples/album` (sheep, horse) and at
every animal it checks here, both splits: these lines show what it does, they are no held-out
check.

Writes `bench/results/real_photos_detector.md` and returns the numbers.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

import bench
from bench.real_photos import COCO_MINI, NB_KEYWORDS, RESULTS_DIR, SPLITS, is_correct, load_photos, reference_synsets

PERSON_MIN_AREA = 0.01        # a person annotated with at least this fraction of the photo must be found
PERSON_SYNSETS = ("person.n.01", "people.n.01", "crowd.n.01")


def annotated_people(records, root: Path = COCO_MINI) -> list[tuple[bool, bool]]:
    """Per record: `(has a person of area >= PERSON_MIN_AREA, has any person annotated)`."""
    from pycocotools.coco import COCO

    found = {}
    for split in SPLITS:
        coco = COCO(str(root / "annotations" / f"instances_{split}.json"))
        person = coco.getCatIds(catNms=["person"])[0]
        for image_id, image in coco.imgs.items():
            areas = [ann["area"] / (image["width"] * image["height"])
                     for ann in coco.imgToAnns.get(image_id, []) if ann["category_id"] == person]
            found[(split, image_id)] = (any(a >= PERSON_MIN_AREA for a in areas), bool(areas))
    return [found.get((record.split, record.image_id), (False, False)) for record in records]


def count_references(records, root: Path = COCO_MINI) -> list[set[str]]:
    """Per record, the collective synsets its instance annotations support (module docstring): the
    member holonyms (WordNet) of each category annotated at least twice, and crowd.n.01 for a
    category with a crowd region (`iscrowd` 1)."""
    from nltk.corpus import wordnet as wn
    from pycocotools.coco import COCO

    from helpers.wordnet.senses import COCO_CATEGORY_SYNSETS

    found = {}
    for split in SPLITS:
        coco = COCO(str(root / "annotations" / f"instances_{split}.json"))
        for image_id in coco.imgs:
            counts: dict[str, int] = {}
            synsets = set()
            for ann in coco.imgToAnns.get(image_id, []):
                category = COCO_CATEGORY_SYNSETS[coco.cats[ann["category_id"]]["name"]]
                counts[category] = counts.get(category, 0) + 1
                if ann["iscrowd"]:
                    synsets.add("crowd.n.01")
            for category, count in counts.items():
                if count >= 2:
                    synsets.update(h.name() for h in wn.synset(category).member_holonyms())
            found[(split, image_id)] = synsets
    return [found.get((record.split, record.image_id), set()) for record in records]


def has_person(synsets) -> bool:
    """A keyword that says a person is there: person.n.01 or below, people, crowd."""
    from helpers.wordnet.hierarchy import ancestors

    return any(s in PERSON_SYNSETS or "person.n.01" in ancestors(s) for s in synsets)


def measure(keywords: list[list[str]], references, categories, people, collective) -> dict:
    """precision@1/3/5 (and @5 strict), keywords per photo, COCO-category recall, person recall and
    false positives; `collective[i]`: photo i's `count_references`."""

    def correct(synset, refs, counts):
        return is_correct(synset, refs) or synset in counts

    result = {}
    for k in (1, 3, 5):
        counted = [(s, refs, counts) for synsets, refs, counts in zip(keywords, references, collective)
                   for s in synsets[:k]]
        result[f"precision@{k}"] = sum(correct(*c) for c in counted) / max(1, len(counted))
    result["precision@5_strict"] = sum(is_correct(s, refs) for s, refs, _ in counted) / max(1, len(counted))
    result["keywords_per_photo"] = float(np.mean([len(k[:NB_KEYWORDS]) for k in keywords]))
    result["no_correct_keyword"] = float(np.mean([
        not any(correct(s, refs, counts) for s in synsets[:NB_KEYWORDS])
        for synsets, refs, counts in zip(keywords, references, collective)]))
    wanted = [(synsets, category) for synsets, cats in zip(keywords, categories) for category in cats]
    result["category_recall"] = float(np.mean([any(is_correct(s, {c}) for s in synsets[:NB_KEYWORDS])
                                               for synsets, c in wanted]))
    large = [has_person(k[:NB_KEYWORDS]) for k, (big, _) in zip(keywords, people) if big]
    absent = [has_person(k[:NB_KEYWORDS]) for k, (_, any_person) in zip(keywords, people) if not any_person]
    result["person_recall"] = float(np.mean(large))
    result["person_false_positives"] = float(np.mean(absent))
    result["photos_with_large_person"], result["photos_without_person"] = len(large), len(absent)
    return result


def animal_box_check(unchecked, checked, annotated, records) -> dict[str, dict[str, int]]:
    """Per split (and "all"): the animal categories the box check looked at (those of
    `helpers.predict.fused.animals_to_verify` in the predictions made without it), counted as
    true/false (annotated on the photo or not) and kept/dropped (still in the checked prediction's
    detections or not). `annotated[i]`: photo i's COCO category names."""
    from helpers.predict.fused import animals_to_verify

    result = {split: {"true kept": 0, "true dropped": 0, "false dropped": 0, "false kept": 0}
              for split in (*SPLITS, "all")}
    for before, after, names, record in zip(unchecked, checked, annotated, records):
        kept = {category for category, _, _ in after.detections}
        for category in animals_to_verify(before.detections):
            key = f"{'true' if category in names else 'false'} {'kept' if category in kept else 'dropped'}"
            for split in (record.split, "all"):
                result[split][key] += 1
    return result


def run(quick: bool = False) -> dict:
    """Every method on the 159 annotated photos; returns and writes the table (and its JSON).
    `quick` changes nothing: the whole run takes about half a minute once the models are loaded."""
    from helpers.predict.fused import PretrainedTagger
    from helpers.predict.imagenet import ImageNetTagger
    from helpers.predict.prediction import DETECTION_MIN_SCORE
    from helpers.wordnet.senses import COCO_CATEGORY_SYNSETS
    from helpers.wordnet.synsets import coco_category_synsets

    started = time.perf_counter()
    records, _ = load_photos()
    paths = [COCO_MINI / record.split / record.file_name for record in records]
    references = reference_synsets(records)
    categories = [set(coco_category_synsets(record.categories)) for record in records]
    people = annotated_people(records)
    collective = count_references(records)

    hierarchy = [[s for s, _, _ in p.tags] for p in ImageNetTagger().predict(paths, progress=False)]
    tagger = PretrainedTagger()
    fused_predictions = tagger.predict(paths, progress=False)
    fused = [[s for s, _, _ in p.tags] for p in fused_predictions]
    tagger.verify_below = 0.0
    unchecked_predictions = tagger.predict(paths, progress=False)
    unchecked = [[s for s, _, _ in p.tags] for p in unchecked_predictions]
    annotated = [set(record.categories) for record in records]
    box_check = animal_box_check(unchecked_predictions, fused_predictions, annotated, records)
    detector = []
    for prediction in fused_predictions:
        best: dict[str, float] = {}
        for category, score, _ in prediction.detections:
            if score >= DETECTION_MIN_SCORE:
                synset = COCO_CATEGORY_SYNSETS[category]
                best[synset] = max(best.get(synset, 0.0), score)
        detector.append(sorted(best, key=lambda s: -best[s])[:NB_KEYWORDS])
    union = [list(dict.fromkeys(d + h))[:NB_KEYWORDS] for d, h in zip(detector, hierarchy)]
    oracle = [sorted(c, key=lambda s: (s != "person.n.01", s))[:NB_KEYWORDS] for c in categories]
    methods = {"(a) hierarchy only": hierarchy, "(d) detector only": detector, "(e) naive union": union,
               "(f) fused (--model pretrained)": fused, "(f-) fused without the animal box check": unchecked,
               "(o) oracle: annotated categories": oracle}
    table = {}
    for method, keywords in methods.items():
        table[method] = {}
        for split in (*SPLITS, "all"):
            members = [i for i, r in enumerate(records) if split in ("all", r.split)]
            table[method][split] = {"photos": len(members), **measure(
                [keywords[i] for i in members], [references[i] for i in members],
                [categories[i] for i in members], [people[i] for i in members],
                [collective[i] for i in members])}
    seconds = time.perf_counter() - started
    fused_all = table["(f) fused (--model pretrained)"]["all"]
    targets = {"precision@5 >= 0.80": fused_all["precision@5"] >= 0.80,
               "keywords per photo >= 3.0": fused_all["keywords_per_photo"] >= 3.0,
               "person recall >= 0.95": fused_all["person_recall"] >= 0.95,
               "person false positives <= 0.05": fused_all["person_false_positives"] <= 0.05}
    lines = ["| method | photos | precision@1 | precision@3 | precision@5 | precision@5 strict | keywords/photo "
             "| no correct keyword "
             "| COCO-category recall | person recall (area >= 1 %) | person on photos without one |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for method, splits in table.items():
        for split in ("all", *SPLITS):
            r = splits[split]
            lines.append(f"| {method}{'' if split == 'all' else f' ({split})'} | {r['photos']} | "
                         f"{r['precision@1']:.3f} | {r['precision@3']:.3f} | {r['precision@5']:.3f} | "
                         f"{r['precision@5_strict']:.3f} | "
                         f"{r['keywords_per_photo']:.2f} | {r['no_correct_keyword']:.2f} | "
                         f"{r['category_recall']:.2f} | {r['person_recall']:.2f} ({r['photos_with_large_person']}) | "
                         f"{r['person_false_positives']:.2f} ({r['photos_without_person']}) |")
    lines += ["", "The animal box check (`helpers.predict.fused.verified_detections`), animal categories checked:",
              "", "| split | checked | true kept | true dropped | false dropped | false kept |",
              "|---|---|---|---|---|---|"]
    for split, counts in box_check.items():
        lines.append(f"| {split} | {sum(counts.values())} | {counts['true kept']} | {counts['true dropped']} | "
                     f"{counts['false dropped']} | {counts['false kept']} |")
    text = "\n".join(lines) + "\n\nTargets (fused, all photos): " + ", ".join(
        f"{name}: {'yes' if ok else 'no'}" for name, ok in targets.items()) + f"\n\n({seconds:.0f} s)\n"
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    (RESULTS_DIR / "real_photos_detector.md").write_text(text, encoding="utf-8")
    print(text)
    results = {"table": table, "animal_box_check": box_check, "targets": targets, "seconds": round(seconds, 1)}
    (RESULTS_DIR / "real_photos_detector.json").write_text(json.dumps(results, indent=2) + "\n")
    return results


def main(argv: list[str] | None = None) -> int:
    return bench.command_line(__doc__, run, argv, quick="the same run (accepted for python -m bench)",
                              print_result=False)


if __name__ == "__main__":
    raise SystemExit(main())
