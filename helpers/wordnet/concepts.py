"""Concepts: what a photo shows, as the concept decoder reads it (WordNet synsets, a confidence and a count).

The concept decoder (`helpers.model.ConceptDecoder`) writes a caption from a *set of concepts*
instead of pixels (the "semantic attention" line of work: You et al., CVPR 2016, "Image captioning
with semantic attention"; Yao et al., ICCV 2017, "Boosting image captioning with attributes"). It
is trained on caption text alone, so both sides must speak the same language:

- **training** (`caption_concepts`, `image_concepts`): the things an image's captions name
  (`helpers.wordnet.synsets.SynsetMapper`), with the count the captions give ("two dogs" -> 2, "a
  group of people" -> `MANY`, a plain plural -> `SEVERAL`), plus its COCO instance categories
  when they are known;
- **inference** (`predicted_concepts`): the COCO categories the detector found (count = boxes,
  confidence = best score) and the synsets the ImageNet hierarchy chose as keywords, each taken
  down to the most specific hyponym the photo's probabilities still support (`specific_synset`:
  "mountain" rather than the keyword's hedged "geological formation").

Both go through `tagger_view`: a caption's synset becomes what the pretrained tagger *can* say.
"man", "woman" and "boy" become person.n.01 (the detector's category), "puppy" becomes dog;
"street" or "sky", which neither the detector nor ImageNet-1k names, are left out (the decoder
learns to say them from what it does see). `TAGGER_SYNSETS` is that output space: the 80 COCO
category synsets and the ImageNet hierarchy's informative synsets.

What the tagger gets wrong is learnt from a measurement, not guessed: `ConceptNoise.measure`
compares, photo by photo, the caption concepts with the concepts the fused predictor gives
(`bench/concept_noise.py`, on the coco-mini train2017 photos), and `ConceptNoise.corrupt` applies
the same rates of missed, extra and confused concepts (and the same confidences) to the training
sets. The measured rates ship with the project (`helpers/resources/concept_noise.json`).

A concept set is handed to the decoder as a float32 array `[L, 3]` (`encode_concepts`): rows
`(concept id, confidence, count)`, row 0 the `<photo>` concept (always present, so an empty set
still has something to attend to), then the concepts by decreasing confidence, `<pad>` (id 0)
after them. Concept id i + `FIRST_CONCEPT_ID` is synset i of a `ConceptVocabulary`.
"""

from __future__ import annotations

import collections
import dataclasses
import functools
import json
import statistics
import threading
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import numpy as np

from helpers.text.vocab import tokenize
from helpers.wordnet.hierarchy import ancestors, imagenet_hierarchy, is_informative
from helpers.wordnet.senses import COCO_CATEGORY_SYNSETS
from helpers.wordnet.synset_vocabulary import SynsetVocabulary
from helpers.wordnet.synsets import SynsetMapper

PAD_CONCEPT_ID, PHOTO_CONCEPT_ID = 0, 1     # reserved concept ids
FIRST_CONCEPT_ID = 2                        # synset i of the vocabulary is concept id i + 2
MAX_CONCEPTS = 10                           # L: rows of an encoded set, <photo> included
SEVERAL, MANY = 3, 5                        # counts of "dogs" (a plural) and "a group of dogs"
MAX_COUNT = 10                              # counts are clipped here
MAX_VIEW_HOPS = 3                           # a caption synset is seen as an ancestor at most this far up
MAX_TAG_CLASSES = 130                       # an ImageNet synset above more classes is too vague
# A keyword's concept is its most specific descendant (in the tagger's output space) at least this
# probable relative to it (`specific_synset`): the keyword rule hedges to "geological formation" at
# 0.86 where "mountain" has 0.67, and a caption should name the mountain. Chosen on the coco-mini
# train2017 photos (`bench.real_captions`' calibration split), CIDEr of (iii): 0.802 without it;
# 0.803, 0.809, 0.810, 0.803, 0.801 and 0.795 for 0.9, 0.8, 0.75, 0.7, 0.6 and 0.5. Held-out
# val2017: 0.701 -> 0.710.
SPECIFIC_RATIO = 0.75
NOISE_FILE = Path(__file__).resolve().parent.parent / "resources" / "concept_noise.json"

NUMBER_WORDS = {"one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7,
                "eight": 8, "nine": 9, "ten": 10, "eleven": 11, "twelve": 12, "couple": 2, "pair": 2,
                "both": 2, "several": SEVERAL, "few": SEVERAL, "many": MANY, "multiple": SEVERAL,
                "numerous": MANY, "lots": MANY}
GROUP_WORDS = {"group", "crowd", "bunch", "herd", "flock", "team", "lot", "number", "row", "line",
               "pile", "stack", "collection", "set", "couple", "pair", "few", "variety", "fleet"}
PEOPLE_SYNSETS = {"people.n.01": MANY, "crowd.n.01": MANY * 2}   # counts of person.n.01


@dataclasses.dataclass(frozen=True)
class Concept:
    """One concept of a photo: a WordNet synset, how sure the source is, how many there are.

    Attributes:
        synset: synset name ("dog.n.01").
        confidence: in [0, 1] (a detector score, a hierarchy probability; 1 for ground truth).
        count: instances, >= 1 (1 when unknown), clipped to `MAX_COUNT`.
    """

    synset: str
    confidence: float = 1.0
    count: int = 1


# --- the tagger's output space --------------------------------------------------------------
@functools.cache
def tagger_synsets() -> frozenset[str]:
    """`TAGGER_SYNSETS`: the synsets the pretrained tagger can output as concepts: the 80 COCO
    category synsets and the ImageNet hierarchy's informative synsets above at most
    `MAX_TAG_CLASSES` classes (what `specific_keywords` may choose)."""
    hierarchy = imagenet_hierarchy()
    imagenet = {name for name, leaves in zip(hierarchy.synset_names, hierarchy.leaf_counts)
                if leaves <= MAX_TAG_CLASSES and is_informative(name)}
    return frozenset(imagenet | set(COCO_CATEGORY_SYNSETS.values()))


@functools.cache
def tagger_view(synset: str) -> str | None:
    """What the tagger can say of `synset`: itself when it is in `tagger_synsets()`, else its
    closest ancestor there at most `MAX_VIEW_HOPS` hypernym levels up (man.n.01 -> person.n.01,
    puppy.n.01 -> dog.n.01), else None (street.n.01, sky.n.01: what is further up, "way" or
    "area", says nothing). Ties between ancestors at the same distance: the deepest, then by
    name.

    Raises:
        ValueError: unknown synset name.
    """
    space = tagger_synsets()
    if synset in space:
        return synset
    from helpers.wordnet.synsets import get_synset

    frontier, seen = [get_synset(synset)], set()
    for _ in range(MAX_VIEW_HOPS + 1):
        found = sorted({s.name() for s in frontier if s.name() in space and s.name() != synset},
                       key=lambda name: (-get_synset(name).min_depth(), name))
        if found:
            return found[0]
        seen.update(s.name() for s in frontier)
        frontier = [p for s in frontier for p in s.hypernyms() + s.instance_hypernyms() if p.name() not in seen]
    return None


# --- concepts from caption text --------------------------------------------------------------
def _mention_count(tokens: Sequence[str], start: int, end: int, mapper: SynsetMapper) -> int:
    """The count a caption gives to the mention `tokens[start:end]`: a number word before it
    ("two dogs"), a group word before "of" ("a group of people": `MANY`, "a couple of": 2), a
    plural head noun (`SEVERAL`), else 1."""
    before = tokens[start - 1] if start >= 1 else ""
    if before in NUMBER_WORDS:
        return NUMBER_WORDS[before]
    if before.isdigit():
        return int(before)
    if before == "of" and start >= 2:
        group = tokens[start - 2]
        if group in NUMBER_WORDS and group not in ("one",):
            return NUMBER_WORDS[group]
        if group in GROUP_WORDS:
            return MANY
    head = tokens[end - 1]
    lemma = mapper._noun_lemma(head)
    return SEVERAL if lemma is not None and lemma != head else 1


def caption_concepts(caption: str, mapper: SynsetMapper) -> dict[str, int]:
    """`{synset: count}` a caption names, in the tagger's view (`tagger_view`; "a man and two
    dogs" -> `{person.n.01: 1, dog.n.01: 2}`; "people" counts `MANY` persons). Several mentions
    of one synset add up ("a man and a woman": 2 persons)."""
    tokens = tokenize(caption)
    found: dict[str, int] = {}
    for start, end, synset in mapper.map_tokens_at(tokens):
        count = _mention_count(tokens, start, end, mapper)
        if synset in PEOPLE_SYNSETS:
            synset, count = "person.n.01", max(count, PEOPLE_SYNSETS[synset])
        view = tagger_view(synset)
        if view is not None:
            found[view] = min(MAX_COUNT, found.get(view, 0) + count)
    return found


def image_concepts(captions: Sequence[str], mapper: SynsetMapper, categories: Mapping[str, int] | None = None,
                   min_votes: int = 2) -> list[Concept]:
    """The concepts of one image from its captions (and its COCO instances when known).

    A caption synset counts when `min(min_votes, len(captions))` captions name it (as the tag
    targets, `helpers.wordnet.synsets.image_synsets`); its count is the median of the counts the
    captions give (rounded up). COCO `categories` (name -> instances) always count, with their
    instance counts. Confidence is 1 (the noise model draws realistic ones at training time).

    Returns:
        Concepts sorted by (votes, count, synset), most named first.
    """
    votes: collections.Counter = collections.Counter()
    counts: dict[str, list[int]] = collections.defaultdict(list)
    for caption in captions:
        for synset, count in caption_concepts(caption, mapper).items():
            votes[synset] += 1
            counts[synset].append(count)
    needed = max(1, min(min_votes, len(captions)))
    chosen = {synset: int(np.ceil(statistics.median(counts[synset])))
              for synset, n in votes.items() if n >= needed}
    for name, instances in (categories or {}).items():
        synset = COCO_CATEGORY_SYNSETS[name]
        chosen[synset] = min(MAX_COUNT, max(int(instances), 1))
        votes[synset] = max(votes[synset], len(captions))
    return [Concept(synset, 1.0, count) for synset, count in
            sorted(chosen.items(), key=lambda item: (-votes[item[0]], -item[1], item[0]))]


# --- concepts from the pretrained tagger -------------------------------------------------------
def specific_synset(synset: str, probability: float, synset_probabilities: Mapping[str, float],
                    ratio: float = SPECIFIC_RATIO) -> tuple[str, float]:
    """The most specific synset a photo's probabilities support below a keyword: among `synset`
    and its hyponyms in `tagger_synsets()` with probability >= `ratio` x `probability`, those with
    none of the others below them, and of these the most probable (ties: the name).

    The keyword rule (`specific_keywords`) hedges as Deng et al. (2012) do, which suits keywords
    that must be right; a caption reads better with "mountain" (0.67) than with its hypernym
    "geological formation" (0.86), and the decoder reads the confidence beside the concept.

    Args:
        synset, probability: a keyword and its probability.
        synset_probabilities: the photo's hierarchical probabilities (synset name -> [0, 1]).
        ratio: in (0, 1]; 1 keeps the keyword unless a hyponym is as probable.

    Returns:
        `(synset name, its probability)`: the keyword itself when no hyponym qualifies.
    """
    floor, space = ratio * probability, tagger_synsets()
    candidates = {synset: float(probability)} | {
        name: float(p) for name, p in synset_probabilities.items()
        if p >= floor and name != synset and name in space and synset in ancestors(name)}
    above = {a for name in candidates for a in ancestors(name)}
    return min(((name, p) for name, p in candidates.items() if name not in above), key=lambda item: (-item[1], item[0]))


def predicted_concepts(detections: Iterable[tuple[str, float, object]], keyword_synsets: Iterable[tuple[str, float]],
                       min_score: float, synset_probabilities: Mapping[str, float] | None = None) -> list[Concept]:
    """The concepts of a photo from the fused predictor's output.

    Args:
        detections: `(COCO category, score, box)` (`Prediction.detections`).
        keyword_synsets: `(synset, probability)` the keyword rule chose (`Prediction.tags`).
        min_score: detections below this score are ignored (`DETECTION_MIN_SCORE`).
        synset_probabilities: the photo's fused probabilities (`Prediction.synset_probabilities`),
            or None. With them, each keyword synset becomes its `specific_synset`.

    Returns:
        One concept per detected category (count = its boxes, confidence = its best score), then
        the keyword synsets not already there in the tagger's view (person counts such as
        "people" are carried by person's count), by decreasing confidence.
    """
    best: dict[str, float] = {}
    boxes: collections.Counter = collections.Counter()
    for category, score, _ in detections:
        if score >= min_score:
            synset = COCO_CATEGORY_SYNSETS[category]
            boxes[synset] += 1
            best[synset] = max(best.get(synset, 0.0), float(score))
    concepts = {synset: Concept(synset, best[synset], min(MAX_COUNT, boxes[synset])) for synset in best}
    for synset, probability in keyword_synsets:
        if synset in PEOPLE_SYNSETS:
            continue
        if synset_probabilities is not None:
            synset, probability = specific_synset(synset, probability, synset_probabilities)
        view = tagger_view(synset)
        if view is not None and view not in concepts:
            concepts[view] = Concept(view, float(probability), 1)
    return sorted(concepts.values(), key=lambda c: (-c.confidence, c.synset))


def unsupported_concepts(caption_synsets: Iterable[str], photo_synsets: Iterable[str],
                         checked: Iterable[str]) -> frozenset[str]:
    """The synsets a caption names that nothing in the photo supports: object hallucination
    (Rohrbach et al. 2018, "Object hallucination in image captioning", the CHAIR measure).

    A caption synset in `checked` (the things whose absence the tagger can vouch for, e.g. the
    COCO categories the detector finds) is supported by a photo concept equal to it, above it
    (the photo's "dog" supports a caption's "sporting dog") or below it (the photo's "domestic
    cat" supports a caption's "cat"); a synset outside `checked` is never reported.

    Args:
        caption_synsets: synset names the caption mentions (`caption_concepts`).
        photo_synsets: synset names of the photo's concepts.
        checked: the synset names that are checked.

    Returns:
        The unsupported synset names (empty: the caption invents none of the checked things).
    """
    photo = set(photo_synsets)
    checked = frozenset(checked)
    return frozenset(s for s in caption_synsets if s in checked and s not in photo
                     and not any(p in ancestors(s) or s in ancestors(p) for p in photo))


# --- the concept vocabulary and the decoder's input -------------------------------------------
class ConceptVocabulary(SynsetVocabulary):
    """The concepts a concept decoder knows: a `SynsetVocabulary` whose synset i has concept id
    i + `FIRST_CONCEPT_ID` (ids 0 and 1 are `<pad>` and `<photo>`).

    Built from the training images' concept sets (`build`); the 80 COCO category synsets are
    always in it, so every detection has a concept.
    """

    FORMAT_NAME = "helpers.concepts.ConceptVocabulary"
    FORMAT_VERSION = 1

    @classmethod
    def from_concept_sets(cls, concept_sets: Iterable[Sequence[Concept]], min_images: int = 5) -> "ConceptVocabulary":
        """Synsets on at least `min_images` training images, and the COCO category synsets."""
        counts: collections.Counter = collections.Counter()
        images = 0
        for concepts in concept_sets:
            images += 1
            counts.update({concept.synset for concept in concepts})
        kept = {name for name, n in counts.items() if n >= min_images} | set(COCO_CATEGORY_SYNSETS.values())
        names = sorted(kept, key=lambda name: (-counts[name], name))
        return cls(names, dict(counts), min_images, 0, images)

    @property
    def num_ids(self) -> int:
        """Concept ids, the two reserved ones included (the size of the concept embedding)."""
        return len(self) + FIRST_CONCEPT_ID

    def concept_id(self, synset: str) -> int | None:
        """The id of `synset`, or of its closest ancestor in the vocabulary; None when none is."""
        if synset in self:
            return self.index(synset) + FIRST_CONCEPT_ID
        known = self.__dict__.setdefault("_outside", {})     # synset outside -> its id (memoised)
        if synset not in known:
            with WORDNET_LOCK:
                above = sorted(ancestors(synset), key=lambda a: (-_depth(a), a))
            known[synset] = next((self.index(name) + FIRST_CONCEPT_ID for name in above if name in self), None)
        return known[synset]

    def synset(self, concept_id: int) -> str:
        """The synset name of a concept id (`<pad>` / `<photo>` for the reserved ones)."""
        if concept_id == PAD_CONCEPT_ID:
            return "<pad>"
        if concept_id == PHOTO_CONCEPT_ID:
            return "<photo>"
        return self.names[concept_id - FIRST_CONCEPT_ID]

    def encode(self, concepts: Sequence[Concept], max_concepts: int = MAX_CONCEPTS) -> np.ndarray:
        """The decoder's input for one photo: float32 `[max_concepts, 3]`, rows `(concept id,
        confidence, count)`: `<photo>` first, then the concepts by decreasing confidence (merged
        when two map to one vocabulary concept: the larger confidence and count), `<pad>` rows
        after them. Concepts beyond `max_concepts - 1` are dropped (the least confident)."""
        merged: dict[int, list[float]] = {}
        for concept in concepts:
            concept_id = self.concept_id(concept.synset)
            if concept_id is None:
                continue
            row = merged.setdefault(concept_id, [0.0, 0.0])
            row[0], row[1] = max(row[0], concept.confidence), max(row[1], concept.count)
        rows = sorted(merged.items(), key=lambda item: (-item[1][0], item[0]))[:max_concepts - 1]
        array = np.zeros((max_concepts, 3), np.float32)
        array[0] = (PHOTO_CONCEPT_ID, 1.0, 0.0)
        for slot, (concept_id, (confidence, count)) in enumerate(rows, start=1):
            array[slot] = (concept_id, confidence, min(count, MAX_COUNT))
        return array

    def decode(self, array: np.ndarray) -> list[Concept]:
        """The concepts of an encoded set (reserved rows left out)."""
        return [Concept(self.synset(int(row[0])), float(row[1]), int(row[2]))
                for row in np.asarray(array) if int(row[0]) >= FIRST_CONCEPT_ID]


@functools.cache
def _depth(synset: str) -> int:
    from helpers.wordnet.hierarchy import depth

    return depth(synset)


# --- the tagger's noise, measured and applied ---------------------------------------------------
# NLTK's WordNet reader is not thread-safe (one file position shared by every reader): the training
# pipeline corrupts concept sets in parallel threads, so every WordNet look-up here takes this lock
# (and `ConceptCache` makes them all once, before training, so the lock is then never waited on).
WORDNET_LOCK = threading.RLock()


@functools.cache
def _hypernyms_within(name: str, hops: int = 2) -> frozenset[str]:
    from helpers.wordnet.synsets import get_synset

    with WORDNET_LOCK:
        level, found = {get_synset(name)}, set()
        for _ in range(hops):
            level = {p for s in level for p in s.hypernyms() + s.instance_hypernyms()}
            found |= level
        return frozenset(s.name() for s in found)


def _related(first: str, second: str, hops: int = 2) -> bool:
    """Whether two synsets share a hypernym at most `hops` levels above each (siblings, cousins)."""
    return bool(_hypernyms_within(first, hops) & _hypernyms_within(second, hops))


@dataclasses.dataclass
class ConceptNoise:
    """How the pretrained tagger's concepts differ from the captions' (measured by `measure`).

    Attributes:
        miss: probability that a caption concept is not predicted, per kind ("coco": a COCO
            category synset; "other": an ImageNet-hierarchy synset).
        confuse: probability that a missed concept comes out as a related one (sharing a
            hypernym within 2 levels: "cat" for "dog").
        extras_per_photo: mean number of predicted concepts no caption names (and not a
            confusion), per photo.
        extra_synsets: `{synset: weight}` those extras, as measured (what the tagger adds).
        hit_confidences, extra_confidences: confidences of the right and the extra concepts.
        count_exact: fraction of right COCO concepts whose detected count equals the captions'.
        photos: photos measured on.
    """

    miss: dict[str, float]
    confuse: float
    extras_per_photo: float
    extra_synsets: dict[str, float]
    hit_confidences: list[float]
    extra_confidences: list[float]
    count_exact: float = float("nan")
    photos: int = 0

    @classmethod
    def measure(cls, caption_sets: Sequence[Sequence[Concept]],
                predicted_sets: Sequence[Sequence[Concept]]) -> "ConceptNoise":
        """Compare, photo by photo, the caption concepts with the predicted ones.

        Args:
            caption_sets: per photo, `image_concepts` of its captions (the truth).
            predicted_sets: per photo, `predicted_concepts` of the fused predictor.

        Raises:
            ValueError: the two lists differ in length or are empty.
        """
        if len(caption_sets) != len(predicted_sets) or not caption_sets:
            raise ValueError(f"need as many caption sets as predicted sets, and some: "
                             f"{len(caption_sets)} vs {len(predicted_sets)}")
        coco = set(COCO_CATEGORY_SYNSETS.values())
        total, missed = collections.Counter(), collections.Counter()
        confused = missed_any = 0
        extras: collections.Counter = collections.Counter()
        hits, extra_conf = [], []
        count_same = count_all = 0
        for truth, predicted in zip(caption_sets, predicted_sets):
            true = {c.synset: c for c in truth}
            pred = {c.synset: c for c in predicted}
            leftover = [name for name in pred if name not in true]
            for name, concept in true.items():
                kind = "coco" if name in coco else "other"
                total[kind] += 1
                if name in pred:
                    hits.append(pred[name].confidence)
                    if kind == "coco":
                        count_all += 1
                        count_same += int(pred[name].count == concept.count)
                    continue
                missed[kind] += 1
                missed_any += 1
                partner = next((p for p in leftover if _related(name, p)), None)
                if partner is not None:
                    confused += 1
                    leftover.remove(partner)
            for name in leftover:
                extras[name] += 1
                extra_conf.append(pred[name].confidence)
        return cls(miss={kind: missed[kind] / max(1, total[kind]) for kind in ("coco", "other")},
                   confuse=confused / max(1, missed_any),
                   extras_per_photo=sum(extras.values()) / len(caption_sets),
                   extra_synsets={name: float(n) for name, n in extras.most_common()},
                   hit_confidences=sorted(round(c, 4) for c in hits),
                   extra_confidences=sorted(round(c, 4) for c in extra_conf),
                   count_exact=count_same / max(1, count_all), photos=len(caption_sets))

    def corrupt(self, concepts: Sequence[Concept], rng: np.random.Generator,
                vocabulary: ConceptVocabulary | None = None) -> list[Concept]:
        """A training set that looks like a predicted one: each concept is missed with
        `miss[kind]` (and then, with `confuse`, replaced by a related vocabulary concept), kept
        ones get a right-concept confidence, and Poisson(`extras_per_photo`) extras are drawn
        from `extra_synsets` with extra-concept confidences."""
        coco = set(COCO_CATEGORY_SYNSETS.values())
        hits = self.hit_confidences or [1.0]
        extra_conf = self.extra_confidences or [0.5]
        result: list[Concept] = []
        present = {c.synset for c in concepts}
        for concept in concepts:
            kind = "coco" if concept.synset in coco else "other"
            if rng.random() >= self.miss[kind]:
                result.append(Concept(concept.synset, float(rng.choice(hits)), concept.count))
            elif rng.random() < self.confuse and vocabulary is not None:
                partner = _related_concept(concept.synset, vocabulary, rng)
                if partner is not None and partner not in present:
                    result.append(Concept(partner, float(rng.choice(extra_conf)), concept.count))
        if self.extra_synsets and self.extras_per_photo > 0:
            names = list(self.extra_synsets)
            weights = np.array([self.extra_synsets[n] for n in names], np.float64)
            for _ in range(int(rng.poisson(self.extras_per_photo))):
                name = names[int(rng.choice(len(names), p=weights / weights.sum()))]
                if name not in present and (vocabulary is None or name in vocabulary):
                    result.append(Concept(name, float(rng.choice(extra_conf)), 1))
        return result

    def summary(self) -> str:
        """One line: the measured rates."""
        return (f"missed {self.miss['coco']:.2f} (COCO) / {self.miss['other']:.2f} (other) of caption "
                f"concepts, {self.confuse:.2f} of the missed confused, {self.extras_per_photo:.2f} "
                f"extra concepts per photo, detected count exact for {self.count_exact:.2f}; "
                f"{self.photos} photos")

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(dataclasses.asdict(self), indent=1) + "\n", encoding="utf-8")

    @classmethod
    def load(cls, path: str | Path = NOISE_FILE) -> "ConceptNoise":
        return cls(**json.loads(Path(path).read_text(encoding="utf-8")))


@functools.cache
def _vocabulary_neighbours(vocabulary_names: tuple[str, ...], synset: str) -> tuple[str, ...]:
    return tuple(name for name in vocabulary_names if name != synset and _related(synset, name))


def related_concepts(synset: str, vocabulary: ConceptVocabulary) -> tuple[str, ...]:
    """The vocabulary's synsets related to `synset` (sharing a hypernym within 2 levels): what a
    confusion turns it into (memoised)."""
    return _vocabulary_neighbours(tuple(vocabulary.names), synset)


def _related_concept(synset: str, vocabulary: ConceptVocabulary, rng: np.random.Generator) -> str | None:
    neighbours = related_concepts(synset, vocabulary)
    return neighbours[int(rng.integers(len(neighbours)))] if neighbours else None

