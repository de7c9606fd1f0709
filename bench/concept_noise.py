"""The pretrained tagger's noise, as the concept decoder's training corruption: measured, not guessed.

    python -m bench.concept_noise            # print the rates on the 80 coco-mini train2017 photos
    python -m bench.concept_noise --write    # and write helpers/resources/concept_noise.json

For each of the 80 annotated train2017 photos of coco-mini, the concepts its captions name
(`helpers.wordnet.concepts.image_concepts`, in the tagger's view: what a caption-text training
example gets) are compared with the concepts the fused predictor gives (`--model pretrained`:
detections and hierarchy keywords, `predicted_concepts`). `ConceptNoise.measure` counts missed
concepts (COCO categories and others apart), confusions (a missed concept and an extra one that
share a hypernym within 2 levels), extras per photo with what they are, the confidences of right
and extra concepts, and how often the detected count equals the captions'. The 79 val2017 photos
are measured too and reported apart: they are never used to set the noise (they are the caption
benchmark's held-out half, `bench/real_captions.py`).
"""

from __future__ import annotations

import json
from pathlib import Path

import bench
from bench.real_photos import COCO_MINI, RESULTS_DIR, load_photos

NB_KEYWORDS = 5
CACHE_FILE = RESULTS_DIR / "fused_predictions.json"


def fused_predictions(records, cache: Path | None = CACHE_FILE) -> list[dict]:
    """Per record: `{"detections": [(category, score, box)], "tags": [(synset, probability)],
    "probabilities": {synset: probability}}` of `PretrainedTagger` (5 keywords; the fused map,
    for `helpers.wordnet.concepts.specific_synset`), cached in `bench/results/` keyed by the
    predictor's fingerprint."""
    from helpers.predict.fused import PretrainedTagger

    tagger = PretrainedTagger()
    key = [tagger.fingerprint, "probabilities", [f"{r.split}/{r.file_name}" for r in records]]
    if cache is not None and cache.is_file():
        saved = json.loads(cache.read_text(encoding="utf-8"))
        if saved.get("key") == key:
            return saved["predictions"]
    paths = [COCO_MINI / record.split / record.file_name for record in records]
    predictions = [{"detections": [[c, float(s), [float(v) for v in box]] for c, s, box in p.detections],
                    "tags": [[synset, float(probability)] for synset, _, probability in p.tags],
                    "probabilities": {synset: float(v) for synset, v in p.synset_probabilities.items()}}
                   for p in tagger.predict(paths, nb_keywords=NB_KEYWORDS, progress=False)]
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        cache.write_text(json.dumps({"key": key, "predictions": predictions}), encoding="utf-8")
    return predictions


def concept_sets(records, predictions):
    """`(caption concept sets, predicted concept sets)`, one of each per record."""
    from helpers.predict.prediction import DETECTION_MIN_SCORE
    from helpers.wordnet.concepts import image_concepts, predicted_concepts
    from helpers.wordnet.synsets import SynsetMapper

    mapper = SynsetMapper()
    truth = [image_concepts(record.captions, mapper) for record in records]
    predicted = [predicted_concepts(p["detections"], p["tags"], DETECTION_MIN_SCORE, p["probabilities"])
                 for p in predictions]
    return truth, predicted


def run(quick: bool = False, write: bool = False) -> dict:
    from helpers.wordnet.concepts import NOISE_FILE, ConceptNoise

    records, _ = load_photos()
    predictions = fused_predictions(records)
    truth, predicted = concept_sets(records, predictions)
    results = {}
    for split in ("train2017", "val2017"):
        rows = [i for i, r in enumerate(records) if r.split == split]
        noise = ConceptNoise.measure([truth[i] for i in rows], [predicted[i] for i in rows])
        print(f"{split}: {noise.summary()}")
        print(f"  most frequent extras: {list(noise.extra_synsets.items())[:8]}")
        results[split] = {key: value for key, value in noise.__dict__.items()
                          if key not in ("hit_confidences", "extra_confidences", "extra_synsets")}
        if split == "train2017" and write:
            noise.save(NOISE_FILE)
            print(f"wrote {NOISE_FILE}")
    return results


def main(argv: list[str] | None = None) -> int:
    return bench.command_line(__doc__, run, argv, quick="the same run (accepted for python -m bench)",
                              options=[bench.option("--write", action="store_true",
                                                    help="write the train2017 rates to helpers/resources")])


if __name__ == "__main__":
    raise SystemExit(main())
