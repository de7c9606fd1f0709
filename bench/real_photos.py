"""Keywords on real photos: the ImageNet hierarchy vs raw ImageNet classes vs a trained model.

    python -m bench.real_photos            # all 239 photos, with the limits (~3 min the first time)
    python -m bench.real_photos --tune     # also print the whole grid of the selector's constants
    python -m bench.real_photos --no-limits   # the table only (seconds once the cache is warm)

The photos: `../shared/data/coco-mini-2017` (or `$SHARED_DIR/data/coco-mini-2017`), 80 train2017
and 159 val2017 real COCO JPEGs. The 159 with annotations (80 train + 79 val) are scored; the 80
val JPEGs without annotations only take part in the language check.

References of a photo: the synsets its five human captions name (`helpers.wordnet.synsets.records_synsets`
with `min_votes=1`: this project's caption -> synset mapping, any caption naming the synset) and
its COCO instance categories (`coco_category_synsets`). A keyword is **correct** when its synset
equals a reference, is a hyponym of one (any depth: "golden retriever" for "dog"), or is a
hypernym of one at most 2 levels up along any hypernym path (`helpers.wordnet.synsets.hypernyms(ref, 2)`:
"canine", "carnivore", "domestic animal" and "animal" for "dog"; not "mammal", 4 levels up).

Measures, per method (the same photos, the same rule):

* **precision@k** (k = 1, 3, 5): correct keywords among each photo's first `min(k, n)` keywords,
  summed over the photos, divided by the keywords counted (`sum(min(k, n))`): a photo with fewer
  than k keywords counts with what it has, a photo with none counts nothing (see "coverage").
* **keywords per photo** (at most 5), **coverage** (photos with at least one keyword).
* **mean depth**: mean WordNet depth (`helpers.wordnet.hierarchy.depth`, shortest path from entity.n.01)
  of the keywords counted in precision@5: specificity; entity 0, animal 6, dog 8, retriever 11.
* **category recall**: of the photos' COCO categories that ImageNet can express (the category's
  synset has an ImageNet class at or below it: 53 of the 80, "dog", "pizza", "bus", "person";
  not "giraffe", "cup", "sink", "toilet", "tv", "skateboard"), the fraction that one of the 5
  keywords matches by the correctness rule.

Methods:

* (a) **hierarchy**: `helpers.wordnet.hierarchy.specific_keywords` on the EfficientNet-Lite0 probabilities
  propagated up WordNet (`ImageNetHierarchy.propagate`), its default constants; and the same with
  `chain=True` (each keyword after its ancestors, general first: what a hierarchical keyword
  field gets; precision@k then counts the general words first).
* (b) **raw top-5**: the 5 most probable ImageNet classes, what ImageNet taggers show. (b) **at
  (a)'s counts**: its first n classes where (a) gives n keywords for that photo: the fair
  comparison, same photos, same number of keywords, same denominators.
* (c) **sample model** (control): the trained run `runs/sample` (`make demo`), its top-5 tags.

The EfficientNet-Lite0 class probabilities of the 239 photos (`helpers.pretrained.efficientnet_lite`, its own
preprocessing: `load_for_imagenet` + `preprocess_input`, batches of 32) are cached in
`bench/results/real_photos_probabilities.npz`, keyed by the photo list and `CACHE_VERSION` (bumped
when the preprocessing changes), so re-runs take seconds.

Limits, measured in the same run (`limits`, skipped by `--no-limits`) and printed with the table:

* the **oracle** precision@1: the share of photos where at least one synset the selector may
  choose (`is_keyword_candidate`) with a hierarchical probability >= `MIN_PROBA` is correct (what
  a selector giving one confident keyword per photo could reach if it always picked right), at
  `MIN_PROBA` and at 0.1;
* the **selector's ceiling**: the best precision@5 of the whole grid of its three constants
  (`TUNING_CAPS` x `TUNING_LAMBDAS` x `TUNING_THRESHOLDS`, 315 settings) chosen on the 159 scored
  photos themselves (in-sample: optimistic), and the setting chosen on train2017 alone with its
  held-out val2017 score;
* a **learned selector** (`learned_selector_precision`: gradient boosting on each candidate's
  features, one keyword per photo), learned on one split and scored on the other: whether a
  better rule is within reach of these photos;
* **other views of the photo**, same network, same selector (`VIEWS`): mirrored, the whole photo
  instead of the centre crop, larger inputs, the mean of two views, and the mean of the 7 x 7
  cells' class probabilities (class activation maps, Zhou et al. 2016) instead of the class
  probabilities of the mean feature: whether the ceiling comes from the preprocessing;
* what "2x (b) at the same counts" asks: a precision of 2 x (b)'s, impossible once (b) exceeds 0.5.

Tuning (`--tune`): the whole grid of the selector's `HEDGING_LAMBDA`, `MIN_PROBA` and
`MAX_KEYWORD_CLASSES`, scored on train2017, val2017 and both; the defaults were chosen on the 80
train2017 photos only, the 79 val2017 photos are the held-out check.

Writes `bench/results/real_photos.md` (the table) and returns the numbers for `python -m bench`.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

import bench

SHARED_DIR = Path(os.environ.get("SHARED_DIR", Path(__file__).resolve().parents[2] / "shared"))
COCO_MINI = SHARED_DIR / "data" / "coco-mini-2017"
RESULTS_DIR = Path(__file__).resolve().parent / "results"
CACHE_FILE = RESULTS_DIR / "real_photos_probabilities.npz"
SAMPLE_RUN = Path(__file__).resolve().parents[1] / "runs" / "sample"
SPLITS = ("train2017", "val2017")
NB_KEYWORDS = 5               # keywords per photo, every method
BATCH_SIZE = 32               # photos per EfficientNet call
REFERENCE_LEVELS = 2          # a keyword <= this many hypernym levels above a reference is correct
LANGUAGES = ("fra", "spa")    # every photo must get a keyword in these, without English fallback
TUNING_LAMBDAS = (0.0, 2.0, 5.0, math.log2(1000), 2 * math.log2(1000))   # bits
TUNING_THRESHOLDS = (0.1, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5)         # min_proba
TUNING_CAPS = (60, 80, 100, 120, 130, 150, 200, 300, 500)        # MAX_KEYWORD_CLASSES
MIN_VOTES = 1                 # a caption synset is a reference when this many captions name it
CACHE_VERSION = 2             # bump when the photos' preprocessing changes: cached probabilities rebuild


# --- data -----------------------------------------------------------------------------------
def load_photos(root: Path = COCO_MINI):
    """`(records, all_paths)`: the annotated `ImageRecord`s of both splits (train first) and
    every JPEG of both split folders (annotated or not), sorted."""
    from helpers.data.coco import load_coco

    if not root.is_dir():
        raise FileNotFoundError(f"{root} not found: this benchmark needs ../shared/data "
                                f"(set SHARED_DIR to the folder holding data/coco-mini-2017)")
    records = [record for split in SPLITS for record in load_coco(root, split)]
    paths = sorted(path for split in SPLITS for path in (root / split).glob("*.jpg"))
    return records, paths


def reference_synsets(records) -> list[set[str]]:
    """Synsets of each record's captions (>= 2 captions agree) and COCO categories."""
    from helpers.wordnet.synsets import SynsetMapper, records_synsets

    return records_synsets(records, SynsetMapper(), min_votes=MIN_VOTES, progress=False)


def imagenet_probabilities(paths: Sequence[Path], cache: Path | None = CACHE_FILE) -> np.ndarray:
    """EfficientNet-Lite0 class probabilities float32 `[len(paths), 1000]` (softmax of the
    logits), read from `cache` when it holds these photos, else computed and saved there."""
    names = np.array([f"{path.parent.name}/{path.name}" for path in paths])
    if cache is not None and cache.is_file():
        stored = np.load(cache)
        if (stored["names"].shape == names.shape and (stored["names"] == names).all()
                and "version" in stored and int(stored["version"]) == CACHE_VERSION):
            return stored["probabilities"]
    from tqdm.auto import tqdm

    from helpers.pretrained import efficientnet_lite

    started = time.perf_counter()
    model = efficientnet_lite.efficientnet_lite0_classifier(weights="imagenet")
    logits = []
    for start in tqdm(range(0, len(paths), BATCH_SIZE), desc="EfficientNet-Lite0", unit="batch"):
        pixels = np.stack([efficientnet_lite.load_for_imagenet(path)
                           for path in paths[start:start + BATCH_SIZE]])       # (B, 224, 224, 3)
        inputs = efficientnet_lite.preprocess_input(pixels)
        logits.append(np.asarray(model(inputs, training=False)["logits"]))      # (B, 1000)
    logits = np.concatenate(logits).astype(np.float64)
    probabilities = np.exp(logits - logits.max(axis=1, keepdims=True))
    probabilities = (probabilities / probabilities.sum(axis=1, keepdims=True)).astype(np.float32)
    print(f"EfficientNet-Lite0 on {len(paths)} photos in {time.perf_counter() - started:.0f} s")
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(cache, names=names, probabilities=probabilities, version=CACHE_VERSION)
    return probabilities


# --- scoring --------------------------------------------------------------------------------
def is_correct(synset: str, references: set[str]) -> bool:
    """The rule: equal to a reference, a hyponym of one, or a hypernym of one <= 2 levels up."""
    from helpers.wordnet.hierarchy import ancestors
    from helpers.wordnet.synsets import hypernyms

    if synset in references or not references.isdisjoint(ancestors(synset)):
        return True
    return any(synset in hypernyms(reference, REFERENCE_LEVELS) for reference in references)


def expressible_categories(categories: Sequence[str]) -> set[str]:
    """Synsets of the COCO categories that have an ImageNet class at or below them."""
    from helpers.wordnet.hierarchy import imagenet_hierarchy
    from helpers.wordnet.synsets import coco_category_synsets

    hierarchy = imagenet_hierarchy()
    return {synset for synset in coco_category_synsets(categories)
            if hierarchy.leaf_count(synset) > 0}


def score(keywords: Sequence[Sequence[str]], references: Sequence[set[str]],
          categories: Sequence[set[str]]) -> dict:
    """The measures of one method: `keywords[i]` are photo i's synsets, most important first."""
    from helpers.wordnet.hierarchy import depth

    result = {}
    for k in (1, 3, 5):
        counted = [(synset, refs) for synsets, refs in zip(keywords, references)
                   for synset in list(synsets)[:k]]
        correct = sum(is_correct(synset, refs) for synset, refs in counted)
        result[f"precision@{k}"] = correct / len(counted) if counted else float("nan")
    top = [list(synsets)[:NB_KEYWORDS] for synsets in keywords]
    result["keywords_per_photo"] = float(np.mean([len(synsets) for synsets in top]))
    result["coverage"] = float(np.mean([len(synsets) > 0 for synsets in top]))
    depths = [depth(synset) for synsets in top for synset in synsets]
    result["mean_depth"] = float(np.mean(depths)) if depths else float("nan")
    found = total = 0
    for synsets, wanted in zip(top, categories):
        total += len(wanted)
        found += sum(any(is_correct(synset, {category}) for synset in synsets)
                     for category in wanted)
    result["category_recall"] = found / total if total else float("nan")
    result["categories"] = total
    return result


def oracle_precision(probabilities: np.ndarray, references: Sequence[set[str]],
                     floor: float) -> float:
    """Share of photos with at least one correct `is_keyword_candidate` synset whose hierarchical
    probability is >= `floor`: the precision@1 of a selector that gives one keyword with that
    confidence per photo and always picks a right one when there is one (an upper bound)."""
    from helpers.wordnet import hierarchy

    tree = hierarchy.imagenet_hierarchy()
    candidates = np.array([hierarchy.is_keyword_candidate(name) for name in tree.synset_names])
    found = 0
    for row, refs in zip(tree.propagate(probabilities), references):
        confident = np.flatnonzero((row >= floor) & candidates)
        found += any(is_correct(tree.synset_names[i], refs) for i in confident)
    return found / len(references)


# --- the methods ----------------------------------------------------------------------------
def hierarchy_keywords(probabilities: np.ndarray, lang: str = "eng",
                       select: Callable | None = None, **options) -> list[list[tuple]]:
    """(a): `specific_keywords` on each photo's hierarchical probabilities."""
    from helpers.wordnet import hierarchy

    select = select or hierarchy.specific_keywords
    tree = hierarchy.imagenet_hierarchy()
    rows = tree.propagate(probabilities)                                        # (N, S)
    return [select(dict(zip(tree.synset_names, row.tolist())), NB_KEYWORDS, lang=lang, **options)
            for row in rows]


def raw_top_classes(probabilities: np.ndarray, count: int = NB_KEYWORDS) -> list[list[str]]:
    """(b): the `count` most probable ImageNet classes of each photo (synset names)."""
    from helpers.wordnet.hierarchy import imagenet_hierarchy

    leaves = imagenet_hierarchy().leaf_names
    order = np.argsort(-probabilities, axis=1, kind="stable")[:, :count]
    return [[leaves[i] for i in row] for row in order]


def sample_model_keywords(paths: Sequence[Path], run_dir: Path = SAMPLE_RUN
                          ) -> list[list[str]] | None:
    """(c): a trained run's top-5 tags (default `runs/sample`), None when it has no bundle."""
    if not (Path(run_dir) / "bundle" / "bundle.json").is_file():
        return None
    from helpers.predict.predictors import Captioner

    captioner = Captioner.from_bundle(run_dir)
    predictions = captioner.predict([str(path) for path in paths], nb_keywords=NB_KEYWORDS,
                                    captions=False, progress=False)
    return [[synset for synset, _, _ in prediction.tags] for prediction in predictions]


# --- the report -----------------------------------------------------------------------------
COLUMNS = ("precision@1", "precision@3", "precision@5", "keywords_per_photo", "coverage",
           "mean_depth", "category_recall")


def to_markdown(table: dict[str, dict[str, dict]], notes: Sequence[str]) -> str:
    """One table: a row per (method, split), a column per measure."""
    lines = ["# Keywords on real photos (coco-mini-2017)", "",
             "| method | photos | " + " | ".join(COLUMNS) + " |",
             "|---|---|" + "---|" * len(COLUMNS)]
    for method, splits in table.items():
        for split, result in splits.items():
            if result is None:
                lines.append(f"| {method} | {split} | not available: run `make demo` first |"
                             + " |" * (len(COLUMNS) - 1))
                continue
            cells = [f"{result[column]:.3f}" if column != "keywords_per_photo"
                     else f"{result[column]:.2f}" for column in COLUMNS]
            lines.append(f"| {method} | {split} ({result['photos']}) | " + " | ".join(cells) + " |")
    return "\n".join(lines + [""] + [f"- {note}" for note in notes]) + "\n"


def grid(probabilities: np.ndarray, references: Sequence[set[str]],
         categories: Sequence[set[str]], groups: dict[str, Sequence[int]],
         lambdas=TUNING_LAMBDAS, thresholds=TUNING_THRESHOLDS, caps=TUNING_CAPS,
         verbose: bool = False) -> list[dict]:
    """Every setting of the selector's three constants, scored on each group of photos.

    `hedging_lambda`, `min_proba` and `helpers.wordnet.hierarchy.MAX_KEYWORD_CLASSES` (set for the grid,
    restored after it); `groups` maps a name ("train2017", "all") to photo indices. Returns one
    row per setting: `{"cap", "lambda", "min_proba", <group>: score(...) of the group}`.
    """
    from tqdm.auto import tqdm

    from helpers.wordnet import hierarchy

    rows = []
    default_cap = hierarchy.MAX_KEYWORD_CLASSES
    settings = [(cap, hedging_lambda, min_proba) for cap in caps for hedging_lambda in lambdas
                for min_proba in thresholds]
    try:
        for cap, hedging_lambda, min_proba in tqdm(settings, desc="selector grid", unit="setting",
                                                   disable=verbose):
            if hierarchy.MAX_KEYWORD_CLASSES != cap:
                hierarchy.MAX_KEYWORD_CLASSES = cap
                hierarchy.is_keyword_candidate.cache_clear()
            chosen = hierarchy_keywords(probabilities, hedging_lambda=hedging_lambda,
                                        min_proba=min_proba)
            synsets = [[synset for synset, _, _ in keywords] for keywords in chosen]
            row = {"cap": cap, "lambda": hedging_lambda, "min_proba": min_proba}
            for group, members in groups.items():
                row[group] = score([synsets[i] for i in members], [references[i] for i in members],
                                   [categories[i] for i in members])
            rows.append(row)
            if verbose:
                print(f"cap {cap:3d}  lambda {hedging_lambda:5.2f}  min_proba {min_proba:.2f}  "
                      + "  ".join(f"{group} P@5 {row[group]['precision@5']:.3f} "
                                  f"depth {row[group]['mean_depth']:.2f}" for group in groups))
    finally:
        hierarchy.MAX_KEYWORD_CLASSES = default_cap
        hierarchy.is_keyword_candidate.cache_clear()
    return rows


# --- other views of the photo (limits) --------------------------------------------------------
# name: (input side in pixels, crop as `helpers.data.images.load_image`, mirrored left-right)
VIEWS = {
    "centre crop 224 (the default)": (224, "center", False),
    "centre crop 224, mirrored": (224, "center", True),
    "whole photo 224 (aspect not kept)": (224, None, False),
    "centre crop 256": (256, "center", False),
    "centre crop 288": (288, "center", False),
}
MEAN_VIEWS = {   # the mean of these views' class probabilities
    "centre crop 224 + mirrored, mean": ("centre crop 224 (the default)",
                                         "centre crop 224, mirrored"),
    "centre crop 224 + whole photo, mean": ("centre crop 224 (the default)",
                                            "whole photo 224 (aspect not kept)"),
}
CELLS_VIEW = "centre crop 224, mean of the 7 x 7 cells' class probabilities"
VIEWS_CACHE = RESULTS_DIR / "real_photos_views.npz"


def _softmax(logits: np.ndarray) -> np.ndarray:
    logits = np.asarray(logits, dtype=np.float64)
    exp = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return (exp / exp.sum(axis=-1, keepdims=True)).astype(np.float32)


def view_probabilities(paths: Sequence[Path], cache: Path | None = VIEWS_CACHE
                       ) -> dict[str, np.ndarray]:
    """EfficientNet-Lite0 class probabilities float32 `[len(paths), 1000]` of every view of
    `VIEWS`, `MEAN_VIEWS` and `CELLS_VIEW` (the softmax of each 7 x 7 cell's logits, the dense
    layer applied to the cell's 1,280 features, averaged over the 49 cells), cached like
    `imagenet_probabilities`."""
    names = np.array([f"{path.parent.name}/{path.name}" for path in paths])
    wanted = [*VIEWS, CELLS_VIEW]
    if cache is not None and cache.is_file():
        stored = np.load(cache)
        if (stored["names"].shape == names.shape and (stored["names"] == names).all()
                and "version" in stored and int(stored["version"]) == CACHE_VERSION
                and all(f"view_{i}" in stored for i in range(len(wanted)))):
            views = {view: stored[f"view_{i}"] for i, view in enumerate(wanted)}
            return {**views, **{name: np.mean([views[v] for v in members], axis=0)
                                for name, members in MEAN_VIEWS.items()}}
    from tqdm.auto import tqdm

    from helpers.data.images import load_image
    from helpers.pretrained import efficientnet_lite

    views: dict[str, np.ndarray] = {}
    models = {}
    for view, (size, crop, mirrored) in tqdm(VIEWS.items(), desc="views", unit="view"):
        if size not in models:
            models[size] = efficientnet_lite.efficientnet_lite0_classifier(
                weights="imagenet", input_shape=(size, size, 3))
        logits, cells = [], []
        for start in range(0, len(paths), BATCH_SIZE):
            pixels = np.stack([load_image(path, size=size, crop=crop)
                               for path in paths[start:start + BATCH_SIZE]])  # (B, S, S, 3)
            if mirrored:
                pixels = pixels[:, :, ::-1]
            outputs = models[size](efficientnet_lite.preprocess_input(pixels), training=False)
            logits.append(np.asarray(outputs["logits"]))                       # (B, 1000)
            if view == next(iter(VIEWS)):
                cells.append(np.asarray(outputs["feature_map"]))               # (B, 7, 7, 1280)
        views[view] = _softmax(np.concatenate(logits))
        if cells:
            dense = models[size].get_layer(efficientnet_lite.keras_layer_name("_fc"))
            kernel, bias = (np.asarray(w, dtype=np.float32) for w in dense.get_weights())
            feature_map = np.concatenate(cells)
            cell_logits = feature_map.reshape(len(feature_map), -1, feature_map.shape[-1]) @ kernel
            views[CELLS_VIEW] = _softmax(cell_logits + bias).mean(axis=1)     # (N, 1000)
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(cache, names=names, version=CACHE_VERSION,
                            **{f"view_{i}": views[view] for i, view in enumerate(wanted)})
    return {**views, **{name: np.mean([views[v] for v in members], axis=0)
                        for name, members in MEAN_VIEWS.items()}}


LEARNED_FLOOR = 0.03          # candidates of the learned selector: hierarchical probability >= this


def learned_selector_precision(probabilities: np.ndarray, references: Sequence[set[str]],
                               fit_on: Sequence[int], test_on: Sequence[int]) -> float:
    """Precision@1 on `test_on` of a selector learned on `fit_on`'s photos: is a better rule
    than the hand-made one within reach of these photos?

    Each photo's candidates (`is_keyword_candidate`, hierarchical probability >= `LEARNED_FLOOR`)
    get 8 features (probability, its log, information gain, WordNet depth, log SemCor count, is
    an ImageNet class, probability rank, the photo's highest candidate probability) and the label
    "correct" (`is_correct`); scikit-learn's `GradientBoostingClassifier` (100 trees of depth 2)
    learns it on `fit_on`, and each `test_on` photo gets its highest-scored candidate.
    """
    from sklearn.ensemble import GradientBoostingClassifier

    from helpers.wordnet import hierarchy

    tree = hierarchy.imagenet_hierarchy()
    candidates = np.array([hierarchy.is_keyword_candidate(name) for name in tree.synset_names])
    semcor = np.log1p([hierarchy.semcor_count(name) for name in tree.synset_names])
    rows = tree.propagate(probabilities)                                        # (N, S)

    def photo(i: int) -> tuple[np.ndarray, np.ndarray]:
        columns = np.flatnonzero(candidates & (rows[i] >= LEARNED_FLOOR))
        p = rows[i, columns].astype(np.float64)
        rank = np.argsort(np.argsort(-p, kind="stable"), kind="stable")
        features = np.stack([p, np.log(p), tree.information_gain[columns], tree.depths[columns],
                             semcor[columns], columns < len(tree.leaf_names), rank,
                             np.full(len(p), p.max(initial=0.0))], axis=1)
        labels = np.array([is_correct(tree.synset_names[c], references[i]) for c in columns])
        return features, labels

    fit = [photo(i) for i in fit_on]
    model = GradientBoostingClassifier(n_estimators=100, max_depth=2, random_state=0)
    model.fit(np.concatenate([f for f, _ in fit]), np.concatenate([y for _, y in fit]))
    correct = 0
    for i in test_on:
        features, labels = photo(i)
        if len(labels):
            correct += bool(labels[np.argmax(model.predict_proba(features)[:, 1])])
    return correct / len(test_on)


def limits(probabilities: np.ndarray, paths: Sequence[Path], rows: Sequence[int], records,
           references: Sequence[set[str]], categories: Sequence[set[str]],
           settings: list[dict] | None = None) -> dict:
    """The limits of the module docstring: the selector's ceiling over its grid, a learned
    selector across the two splits, and the precision of other views of the photo. `probabilities` are all
    photos' (`paths` order),
    `rows[i]` is record i's row; `settings`: `grid`'s rows for groups train2017, val2017 and
    all, when already computed."""
    from helpers.wordnet import hierarchy

    groups = {split: [i for i, record in enumerate(records) if split in ("all", record.split)]
              for split in (*SPLITS, "all")}
    if settings is None:
        settings = grid(probabilities[list(rows)], references, categories, groups)
    best_all = max(settings, key=lambda row: (row["all"]["precision@5"], row["all"]["mean_depth"]))
    best_train = max(settings, key=lambda row: (row["train2017"]["precision@5"],
                                                row["train2017"]["mean_depth"]))
    views = {}
    for view, view_probs in view_probabilities(paths).items():
        synsets = [[synset for synset, _, _ in keywords]
                   for keywords in hierarchy_keywords(view_probs[list(rows)])]
        views[view] = {group: score([synsets[i] for i in members],
                                    [references[i] for i in members],
                                    [categories[i] for i in members])
                       for group, members in groups.items()}
    setting = "cap {cap}, lambda {lambda:.2f}, min_proba {min_proba}".format
    chosen = probabilities[list(rows)]
    return {
        "learned_train_to_val": learned_selector_precision(chosen, references, groups["train2017"],
                                                           groups["val2017"]),
        "learned_val_to_train": learned_selector_precision(chosen, references, groups["val2017"],
                                                           groups["train2017"]),
        "grid_settings": len(settings),
        "ceiling": best_all["all"]["precision@5"],
        "ceiling_setting": setting(**best_all),
        "ceiling_depth": best_all["all"]["mean_depth"],
        "best_on_train": best_train["train2017"]["precision@5"],
        "best_on_train_val": best_train["val2017"]["precision@5"],
        "best_on_train_all": best_train["all"]["precision@5"],
        "best_on_train_setting": setting(**best_train),
        "default_setting": setting(cap=hierarchy.MAX_KEYWORD_CLASSES,
                                   **{"lambda": hierarchy.HEDGING_LAMBDA,
                                      "min_proba": hierarchy.MIN_PROBA}),
        "views": views,
    }


def views_markdown(views: dict[str, dict]) -> list[str]:
    """The views table: precision@5, keywords per photo and mean depth per split."""
    lines = ["", "## The same selector on other views of the photo (limits)", "",
             "| view | precision@5 train2017 | val2017 | all | keywords per photo | mean depth |",
             "|---|---|---|---|---|---|"]
    for view, result in views.items():
        lines.append(f"| {view} | {result['train2017']['precision@5']:.3f} | "
                     f"{result['val2017']['precision@5']:.3f} | {result['all']['precision@5']:.3f}"
                     f" | {result['all']['keywords_per_photo']:.2f} | "
                     f"{result['all']['mean_depth']:.2f} |")
    return lines


def run(quick: bool = False, tuning: bool = False, sample_run: str | os.PathLike = SAMPLE_RUN,
        with_limits: bool | None = None) -> dict:
    """Score the three methods on the 159 annotated photos, check fra/spa on all 239; returns
    the numbers (and writes `bench/results/real_photos.md`). The limits (`limits`: ~1.5 min of
    selector grid, and the first time ~1 min of EfficientNet on the views) are measured unless
    `with_limits` is False; by default, unless `quick`. `tuning`: also print the whole grid."""
    from helpers.wordnet import hierarchy
    from helpers.wordnet.keywords import keyword

    started = time.perf_counter()
    records, paths = load_photos()
    index = {f"{path.parent.name}/{path.name}": row for row, path in enumerate(paths)}
    probabilities = imagenet_probabilities(paths)                               # (239, 1000)
    rows = [index[f"{record.split}/{record.file_name}"] for record in records]
    references = reference_synsets(records)
    categories = [expressible_categories(record.categories) for record in records]

    chosen = hierarchy_keywords(probabilities[rows])
    hierarchy_synsets = [[synset for synset, _, _ in keywords] for keywords in chosen]
    chains = [[synset for synset, _, _ in keywords]
              for keywords in hierarchy_keywords(probabilities[rows], chain=True)]
    raw = raw_top_classes(probabilities[rows])
    raw_same_count = [classes[:len(kw)] for classes, kw in zip(raw, hierarchy_synsets)]
    sample = sample_model_keywords([paths[row] for row in rows], Path(sample_run))

    methods = {
        "(a) hierarchy": hierarchy_synsets,
        "(a) hierarchy, chain=True": chains,
        "(b) raw top-5 classes": raw,
        "(b) raw classes, (a)'s count": raw_same_count,
        "(c) sample model": sample,
    }
    table: dict[str, dict] = {}
    for method, keywords in methods.items():
        table[method] = {}
        for split in (*SPLITS, "all"):
            members = [i for i, record in enumerate(records) if split in ("all", record.split)]
            if keywords is None:
                table[method][split] = None
                continue
            result = score([keywords[i] for i in members], [references[i] for i in members],
                           [categories[i] for i in members])
            table[method][split] = {"photos": len(members), **result}

    languages, same_as_english = {}, {}
    for lang in LANGUAGES:
        per_photo = hierarchy_keywords(probabilities, lang=lang)
        languages[lang] = sum(1 for keywords in per_photo if keywords)
        given = [(synset, word) for keywords in per_photo for synset, word, _ in keywords]
        same_as_english[lang] = (sum(word.casefold() == (keyword(synset, "eng") or "").casefold()
                                     for synset, word in given), len(given))
    oracle = {floor: oracle_precision(probabilities[rows], references, floor)
              for floor in (hierarchy.MIN_PROBA, 0.1)}
    if with_limits is None:
        with_limits = not quick
    bounds = None
    if with_limits or tuning:
        groups = {split: [i for i, record in enumerate(records) if split in ("all", record.split)]
                  for split in (*SPLITS, "all")}
        settings = grid(probabilities[rows], references, categories, groups, verbose=tuning)
        if with_limits:
            bounds = limits(probabilities, paths, rows, records, references, categories, settings)

    a, b = table["(a) hierarchy"]["all"], table["(b) raw classes, (a)'s count"]["all"]
    b5 = table["(b) raw top-5 classes"]["all"]
    notes = [
        (f"selector: helpers.wordnet.hierarchy.specific_keywords, lambda = "
         f"{hierarchy.HEDGING_LAMBDA:.2f} bits, min_proba = {hierarchy.MIN_PROBA} (tuned on "
         f"train2017's 80 photos; val2017 held out)"),
        (f"(a) precision@5 {a['precision@5']:.3f} (target >= 0.70) = "
         f"{a['precision@5'] / b['precision@5']:.2f}x (b) at the same counts (target >= 2), "
         f"{a['precision@5'] / b5['precision@5']:.2f}x (b)'s top-5"),
        (f"limits: oracle precision@1 (one confident candidate per photo, always the right one "
         f"when there is one) {oracle[hierarchy.MIN_PROBA]:.3f} at p >= {hierarchy.MIN_PROBA}, "
         f"{oracle[0.1]:.3f} at p >= 0.1; 2x (b) at the same counts would be "
         f"{2 * b['precision@5']:.3f}, above 1 (the most a precision can be)"
         if 2 * b['precision@5'] > 1 else
         f"limits: oracle precision@1 {oracle[hierarchy.MIN_PROBA]:.3f} at p >= "
         f"{hierarchy.MIN_PROBA}, {oracle[0.1]:.3f} at p >= 0.1"),
        *(f"photos with a keyword in {lang}, no English fallback: {count} / {len(paths)} "
          f"({same_as_english[lang][0]} of its {same_as_english[lang][1]} keywords are spelt as "
          f"in English: OMW's own {lang} lemmas, such as 'pizza')"
          for lang, count in languages.items()),
        (f"references: caption synsets (>= {MIN_VOTES} caption) + COCO categories; a keyword is "
         f"correct when it equals a reference, is a hyponym of one, or a hypernym <= "
         f"{REFERENCE_LEVELS} levels above one"),
    ]
    if bounds is not None:
        views = bounds["views"]
        best_view = max(views, key=lambda view: views[view]["all"]["precision@5"])
        notes += [
            (f"selector's ceiling: the best precision@5 of its {bounds['grid_settings']} settings "
             f"(cap x lambda x min_proba) chosen on these 159 photos themselves (in-sample, "
             f"optimistic): {bounds['ceiling']:.3f} ({bounds['ceiling_setting']}, mean depth "
             f"{bounds['ceiling_depth']:.2f}); the best on train2017 ({bounds['best_on_train_setting']}"
             f": {bounds['best_on_train']:.3f}) gives {bounds['best_on_train_val']:.3f} on val2017, "
             f"{bounds['best_on_train_all']:.3f} on all; the default ({bounds['default_setting']}) "
             f"{a['precision@5']:.3f} = {a['precision@5'] / bounds['ceiling']:.3f} of the ceiling"),
            (f"a learned selector (gradient boosting on 8 features of each candidate, one keyword "
             f"per photo; `learned_selector_precision`), learned on one split and scored on the "
             f"other: precision@1 {bounds['learned_train_to_val']:.3f} on val2017, "
             f"{bounds['learned_val_to_train']:.3f} on train2017 (the default: "
             f"{table['(a) hierarchy']['val2017']['precision@1']:.3f}, "
             f"{table['(a) hierarchy']['train2017']['precision@1']:.3f})"),
            (f"other views of the photo, same network and selector: precision@5 "
             f"{min(v['all']['precision@5'] for v in views.values()):.3f}-"
             f"{max(v['all']['precision@5'] for v in views.values()):.3f} over {len(views)} views "
             f"(best: {best_view}, {views[best_view]['all']['precision@5']:.3f}, mean depth "
             f"{views[best_view]['all']['mean_depth']:.2f}); table below"),
        ]
    if sample is None:
        notes.append("(c) sample model: not available: run `make demo` first")
    markdown = to_markdown(table, notes)
    if bounds is not None:
        markdown += "\n".join(views_markdown(bounds["views"])) + "\n"
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    (RESULTS_DIR / "real_photos.md").write_text(markdown, encoding="utf-8")
    print(markdown)
    print(f"{len(records)} annotated photos scored, {len(paths)} checked in {', '.join(LANGUAGES)}"
          f" in {time.perf_counter() - started:.0f} s; table in {RESULTS_DIR / 'real_photos.md'}")
    flat = {f"{method}.{split}.{column}": round(result[column], 4)
            for method, splits in table.items() for split, result in splits.items()
            if result is not None for column in COLUMNS}
    return {"photos_scored": len(records), "photos_total": len(paths),
            **{f"oracle_precision@1_at_{floor}": round(value, 4) for floor, value in oracle.items()},
            **{f"photos_with_{lang}_keyword": count for lang, count in languages.items()},
            **flat,
            **({f"limits.{key}": (round(value, 4) if isinstance(value, float) else value)
                for key, value in bounds.items() if key != "views"} if bounds else {}),
            **({f"limits.view.{view}.precision@5": round(result["all"]["precision@5"], 4)
                for view, result in bounds["views"].items()} if bounds else {})}


def main(argv: list[str] | None = None) -> int:
    return bench.command_line(__doc__, run, argv, prog="python -m bench.real_photos", options=[
        bench.option("--tune", dest="tuning", action="store_true",
                     help="print the whole grid of the selector's lambda, min_proba and keyword "
                          "cap, scored on train2017, val2017 and both"),
        bench.option("--no-limits", dest="with_limits", action="store_false",
                     help="skip the limits (selector grid, other views): the table only"),
        bench.option("--sample-run", default=str(SAMPLE_RUN),
                     help="the trained run of the control (c) (default: runs/sample)")])


if __name__ == "__main__":
    raise SystemExit(main())
