"""Speed of caption tokenisation, vocabulary counting and synset mapping on real captions.

    python -m bench.vocab_speed            # every caption; NLTK compared on all of them (~1 min)
    python -m bench.vocab_speed --quick    # NLTK compared on 3,000 captions per corpus

Corpora (read in place from ../shared/data, or `SHARED_DIR`/data; skipped with a message when
absent): the COCO val2014 4,800-image set (24,019 captions) and Flickr8k (40,460 captions).

For each corpus it measures, in captions per second:

- `tokenize`: `helpers.text.vocab.tokenize` (and `nltk.word_tokenize` on the same captions: the
  speed ratio, and how many captions the two tokenise differently);
- `build`: `Vocabulary.build(min_count=5)` (tokenise + `collections.Counter`), with the
  extrapolated time for the full COCO 2014 train+val captions (616,767);
- `synsets cold`: a fresh `SynsetMapper` mapping every image's captions (`image_synsets`,
  WordNet already loaded), so each distinct word is looked up once; `synsets warm`: again, all
  cached.
"""

from __future__ import annotations

import collections
import json
import os
import time
from pathlib import Path

import bench

PROJECT_ROOT = Path(__file__).resolve().parent.parent
SHARED_DATA = Path(os.environ.get("SHARED_DIR", PROJECT_ROOT.parent / "shared")) / "data"
FULL_COCO_CAPTIONS = 616_767   # COCO 2014 train (414,113) + val (202,654) captions
QUICK_NLTK_CAPTIONS = 3_000


def load_corpora(data_dir: Path = SHARED_DATA) -> dict[str, dict[object, list[str]]]:
    """`{corpus name: {image id: [captions]}}` for the corpora found under `data_dir`."""
    corpora = {}
    coco = data_dir / "coco-val2014-captions-4800" / "captions_val2014_subset4800.json"
    if coco.is_file():
        by_image = collections.defaultdict(list)
        for annotation in json.loads(coco.read_text(encoding="utf-8"))["annotations"]:
            by_image[annotation["image_id"]].append(annotation["caption"])
        corpora["coco-val2014-4800"] = dict(by_image)
    else:
        print(f"skipping COCO 4800: {coco} not found")
    flickr = data_dir / "flickr8k-text" / "Flickr8k.token.txt"
    if flickr.is_file():
        by_image = collections.defaultdict(list)
        for line in flickr.read_text(encoding="utf-8").splitlines():
            name, caption = line.split("\t", 1)
            by_image[name.split("#", 1)[0]].append(caption)
        corpora["flickr8k"] = dict(by_image)
    else:
        print(f"skipping Flickr8k: {flickr} not found")
    return corpora


def _seconds(function, *args):
    start = time.perf_counter()
    result = function(*args)
    return time.perf_counter() - start, result


def measure(name: str, by_image: dict[object, list[str]], quick: bool) -> dict:
    import nltk

    from helpers.text import vocab
    from helpers.wordnet import synsets
    from helpers.wordnet.synset_vocabulary import SynsetVocabulary

    captions = [caption for group in by_image.values() for caption in group]
    n = len(captions)
    result = {"captions": n, "images": len(by_image)}

    seconds, ours = _seconds(lambda: [vocab.tokenize(c) for c in captions])
    result["tokenize_captions_per_s"] = n / seconds
    compared = captions[:QUICK_NLTK_CAPTIONS] if quick else captions
    nltk.word_tokenize("warm up.")  # loads Punkt
    seconds_nltk, reference = _seconds(lambda: [
        [t for t in nltk.word_tokenize(c.lower()) if any(ch.isalnum() for ch in t)]
        for c in compared])
    result["nltk_tokenize_captions_per_s"] = len(compared) / seconds_nltk
    result["tokenize_speedup_vs_nltk"] = result["tokenize_captions_per_s"] / result[
        "nltk_tokenize_captions_per_s"]
    result["nltk_compared_captions"] = len(compared)
    result["nltk_mismatches"] = sum(a != b for a, b in zip(ours, reference))

    seconds, vocabulary = _seconds(vocab.Vocabulary.build, captions, 5)
    result["build_captions_per_s"] = n / seconds
    result["vocabulary_size_min_count_5"] = len(vocabulary)
    result["full_coco_build_s_extrapolated"] = FULL_COCO_CAPTIONS / result["build_captions_per_s"]

    synsets.wordnet()  # loading WordNet is not part of the mapping time
    mapper = synsets.SynsetMapper()
    groups = list(by_image.values())
    seconds, per_image = _seconds(lambda: [synsets.image_synsets(g, mapper) for g in groups])
    result["synsets_cold_captions_per_s"] = n / seconds
    result["distinct_words_mapped"] = len(mapper)
    seconds, _ = _seconds(lambda: [synsets.image_synsets(g, mapper) for g in groups])
    result["synsets_warm_captions_per_s"] = n / seconds
    result["synset_vocabulary_size_min_images_5"] = len(
        SynsetVocabulary.build(per_image, min_images=5))
    return result


def run(quick: bool = False) -> dict:
    """Measure every corpus found; returns `{corpus: {measure: value}}` (empty without data)."""
    corpora = load_corpora()
    results = {name: measure(name, by_image, quick) for name, by_image in corpora.items()}
    if results:
        rows = [
            ("captions", "captions", "{:,}"),
            ("tokenize (captions/s)", "tokenize_captions_per_s", "{:,.0f}"),
            ("nltk.word_tokenize (captions/s)", "nltk_tokenize_captions_per_s", "{:,.0f}"),
            ("tokenize speed-up vs NLTK", "tokenize_speedup_vs_nltk", "{:.1f}x"),
            ("captions tokenised differently", "nltk_mismatches", "{:,}"),
            ("  of captions compared", "nltk_compared_captions", "{:,}"),
            ("Vocabulary.build (captions/s)", "build_captions_per_s", "{:,.0f}"),
            ("vocabulary size, min_count=5", "vocabulary_size_min_count_5", "{:,}"),
            ("full COCO 616k build, extrapolated (s)", "full_coco_build_s_extrapolated", "{:.1f}"),
            ("synset mapping, cold (captions/s)", "synsets_cold_captions_per_s", "{:,.0f}"),
            ("synset mapping, warm (captions/s)", "synsets_warm_captions_per_s", "{:,.0f}"),
            ("distinct words looked up", "distinct_words_mapped", "{:,}"),
            ("synset vocabulary, min_images=5", "synset_vocabulary_size_min_images_5", "{:,}"),
        ]
        names = list(results)
        print(f"\n{'measure':42s}" + "".join(f"{name:>20s}" for name in names))
        for label, key, form in rows:
            print(f"{label:42s}" + "".join(f"{form.format(results[n][key]):>20s}" for n in names))
    else:
        print(f"no caption corpus under {SHARED_DATA}: nothing measured")
    return results


def main(argv: list[str] | None = None) -> int:
    return bench.command_line(__doc__.splitlines()[0], run, argv, quick="compare NLTK on 3,000 captions only",
                              print_result=False)


if __name__ == "__main__":
    raise SystemExit(main())
