"""ImageNet's 1,000 classes as a WordNet hierarchy: hierarchical probabilities and keywords.

The 1,000 ImageNet-1k (ILSVRC-2012) classes are WordNet 3.0 noun synsets (wnid `n02084071` is
`wordnet.synset_from_pos_and_offset("n", 2084071)`, `dog.n.01`; the list, in class-index order, is
`helpers/resources/imagenet_wnids.txt`). So any ImageNet classifier's 1,000 probabilities give
multilingual, hierarchical keywords without training:

* `ImageNetHierarchy` (`imagenet_hierarchy()`, built once): the 1,000 classes (leaves) and every
  synset above them along WordNet hypernyms and instance hypernyms (1,860 synsets);
  `propagate` gives each synset's probability = the sum of the probabilities of the ImageNet
  classes below it, each class counted once per ancestor (WordNet is a DAG: a class reached by two
  hypernym paths is not counted twice), so `entity.n.01` gets the whole mass.
* `specific_keywords`: confident *and* specific keywords from such probabilities (below).
* `keyword_path`: a synset's chain of ancestors, general -> specific, for hierarchical keyword
  fields (XMP `lr:hierarchicalSubject` "animal|vertebrate|mammal|dog|golden retriever").
* `class_names`: the keyword of each class, what a plain ImageNet tagger shows.

**Uninformative abstractions** are never keywords (`is_informative`): a synset is left out when

1. it is in `ABSTRACTIONS`, an explicit list of the top of WordNet's noun hierarchy and of the
   nodes under it that name a way of classifying rather than something one sees in a photo
   (entity, physical entity, object, whole, artifact, living thing, organism, matter,
   instrumentality, commodity, covering, ...; each listed with its ImageNet coverage), or
2. it is at most `MAX_ABSTRACT_DEPTH` (2) hypernym levels below `entity.n.01` (WordNet's unique
   beginners and their first children: abstraction, relation, attribute, causal agent, ...), or
3. it covers more than half of the ImageNet classes (`MAX_LEAF_FRACTION`: physical entity,
   object, whole, artifact; already in the list, the rule keeps it true for any other node).

**Keyword paths** follow one hypernym path, chosen deterministically: among
`synset.hypernym_paths()`, the one with the most kept ancestors, then the longest, then the first
by synset names. Its ancestors are kept when informative (above) and *basic words*: the sense was
tagged at least `MIN_SEMCOR_COUNT` (1) time in SemCor (`Lemma.count()`, summed over the synset's
lemmas). Words people use in running text stay (animal, bird, dog, vehicle, food), taxonomic
links that nobody writes are dropped (chordate, placental, canine, odd-toed ungulate). The synset
itself always ends the path.

**Keyword selection** (`specific_keywords`) follows the accuracy/specificity trade-off of Deng,
Krause, Berg & Fei-Fei, "Hedging your bets: optimizing accuracy-specificity trade-offs in large
scale visual recognition", CVPR 2012 (DARTS). A synset `v` has the reward (information gain)
`r(v) = log2(1000) - log2(classes at or below v)`: 0 for `entity.n.01`, 9.97 for a class. In
five lines:

1. probabilities are made consistent: a synset is at least as probable as any synset below it;
2. informative synsets above at most `MAX_KEYWORD_CLASSES` (130) ImageNet classes are ranked by
   `(r(v) + lambda) * p(v)`, DARTS's Lagrangian (expected reward + lambda x expected accuracy),
   with `lambda = HEDGING_LAMBDA = log2(1000)`;
3. they are taken in that order when `p(v) >= min_proba` (default `MIN_PROBA`, 0.25) and they
   share no hypernym link and no ImageNet class with one already taken, up to `nb_keywords`;
4. if none passes, the best-ranked one is given alone (DARTS always answers, hedging up);
5. each becomes a keyword in `lang`; no lemma there (even via a near hypernym): skipped.

The cap of rule 2 keeps a chosen keyword at the level people name things ("dog", 118 classes;
"canine" and "device", 130) and leaves the vague ones to chains: "carnivore" (158), "mammal"
(218), "vertebrate" (337), "animal" (398). Given alone, those were mostly the selector hedging on a
photo it did not recognise ("animal" for surfers, a kite, a horse rider): true at best, and no help
to anyone searching their photos.

The three constants were chosen on coco-mini-2017 (`python -m bench.real_photos --tune`): a grid
of lambda in {0, 2, 5, log2(1000), 2 log2(1000)} bits, min_proba in {0.1, 0.15, 0.2, 0.25, 0.3,
0.4, 0.5} and the cap in {60, 80, 100, 120, 130, 150, 200, 300, 500} classes on the 80 train2017
photos only (the 79 val2017 photos are reported apart). Only 80 photos (one keyword in 80 is 0.01)
and a flat optimum (precision@5 0.63-0.64 for caps 130-200, lambda 10-50 bits, min_proba
0.2-0.25), so these are reasonable values, not optimal ones: the smallest cap of that plateau;
lambda = log2(1000), "accuracy weighs as much as the information of one class" (20 bits gave
one more right keyword in 80 photos, but more general ones: mean depth 7.5 against 7.7, and
"domestic animal" rather than "golden retriever" when a trained model is sure of "dog");
min_proba 0.25 (0.2 gives 0.1 more keyword per photo at the same precision on train2017, 0.035
less on val2017).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Mapping, Sequence

import numpy as np

from helpers.config import imagenet_wnids
from helpers.wordnet.keywords import keyword
from helpers.wordnet.synsets import get_synset, wordnet

NUM_CLASSES = 1000

# --- settings (one home each) ---------------------------------------------------------------
# The top of WordNet's noun hierarchy and the nodes under it that classify rather than name what
# a photo shows. (ImageNet classes below each, of 1,000, for the record.)
ABSTRACTIONS: frozenset[str] = frozenset({
    "entity.n.01",            # 1000
    "physical_entity.n.01",   # 997
    "abstraction.n.06",       # 8
    "thing.n.12",             # 0, "a separate and self-contained entity"
    "object.n.01",            # 958
    "whole.n.02",             # 949
    "artifact.n.01",          # 522
    "living_thing.n.01",      # 410
    "organism.n.01",          # 410
    "instrumentality.n.03",   # 358
    "matter.n.03",            # 50
    "substance.n.01",         # 5, "the real physical matter of which a thing consists"
    "substance.n.07",         # 27, "a particular kind or species of matter"
    "solid.n.01",             # 27, "matter that is solid at room temperature"
    "causal_agent.n.01",      # 7
    "agent.n.03",             # 4
    "natural_object.n.01",    # 17
    "part.n.01",              # 5
    "part.n.02",              # 5
    "piece.n.01",             # 5
    "article.n.02",           # 4, "one of a class of artifacts"
    "creation.n.02",          # 1
    "commodity.n.01",         # 63, "articles of commerce"
    "consumer_goods.n.01",    # 62
    "durables.n.01",          # 27
    "covering.n.02",          # 90, "an artifact that covers something else"
    "location.n.01",          # 1
    "point.n.02",             # 1
})
MAX_ABSTRACT_DEPTH = 2        # synsets <= this many hypernym levels below entity.n.01: abstractions
MAX_LEAF_FRACTION = 0.5       # synsets above more than this fraction of the classes: abstractions
MAX_KEYWORD_CLASSES = 130     # a chosen keyword is above at most this many classes (dog.n.01: 118)
MIN_SEMCOR_COUNT = 1          # keyword paths keep ancestors tagged at least this often in SemCor
HEDGING_LAMBDA = math.log2(NUM_CLASSES)   # DARTS lambda, bits (9.97): a class's information
MIN_PROBA = 0.25              # default confidence threshold of a keyword (hierarchical probability)


# --- WordNet helpers ------------------------------------------------------------------------
def _parents(synset) -> list:
    return synset.hypernyms() + synset.instance_hypernyms()


@functools.cache
def ancestors(synset_name: str) -> frozenset[str]:
    """Every synset above `synset_name` along hypernyms and instance hypernyms (not itself).

    Raises:
        ValueError: unknown synset.
    """
    return frozenset(parent.name() for parent in get_synset(synset_name).closure(_parents))


@functools.cache
def depth(synset_name: str) -> int:
    """WordNet depth: the length of the SHORTEST hypernym path from `entity.n.01` (NLTK's
    `Synset.min_depth()`; entity 0, animal 6, dog 8, golden retriever 12)."""
    return get_synset(synset_name).min_depth()


@functools.cache
def _sense_counts() -> dict[str, int]:
    """`{sense key: SemCor tag count}`, read once from WordNet's `cntlist.rev` (what
    `Lemma.count()` reads one line at a time, ~1 ms a call)."""
    counts: dict[str, int] = {}
    with wordnet().open("cntlist.rev") as lines:
        for line in lines:
            sense_key, _, count = line.split()
            counts[sense_key] = counts.get(sense_key, 0) + int(count)
    return counts


@functools.cache
def semcor_count(synset_name: str) -> int:
    """Times the synset's lemmas were tagged in SemCor (`sum(lemma.count())`): dog.n.01 42,
    animal.n.01 87, canine.n.02 0."""
    counts = _sense_counts()
    return sum(counts.get(lemma.key(), 0) for lemma in get_synset(synset_name).lemmas())


@functools.cache
def is_informative(synset_name: str) -> bool:
    """False for an uninformative abstraction (the module docstring's rule: `ABSTRACTIONS`, depth
    <= `MAX_ABSTRACT_DEPTH`, or above more than `MAX_LEAF_FRACTION` of the ImageNet classes)."""
    if synset_name in ABSTRACTIONS:
        return False
    if depth(synset_name) <= MAX_ABSTRACT_DEPTH:
        return False
    leaves = imagenet_hierarchy().leaf_count(synset_name)
    return leaves <= MAX_LEAF_FRACTION * NUM_CLASSES


@functools.cache
def is_keyword_candidate(synset_name: str) -> bool:
    """Whether `specific_keywords` may choose the synset: informative (`is_informative`) and above
    at most `MAX_KEYWORD_CLASSES` ImageNet classes (more general ones only appear in chains). A
    synset with no ImageNet class below it (a trained model's "grass.n.01") qualifies."""
    return is_informative(synset_name) and \
        imagenet_hierarchy().leaf_count(synset_name) <= MAX_KEYWORD_CLASSES


def _is_basic(synset_name: str) -> bool:
    return is_informative(synset_name) and semcor_count(synset_name) >= MIN_SEMCOR_COUNT


@functools.cache
def hypernym_path(synset_name: str) -> tuple[str, ...]:
    """The informative, basic ancestors of a synset, general -> specific, then the synset.

    One hypernym path, chosen deterministically (module docstring): most kept ancestors, then
    the longest path, then the first by names. `hypernym_path("golden_retriever.n.01")` is
    ("animal.n.01", "vertebrate.n.01", "mammal.n.01", "dog.n.01", "golden_retriever.n.01").

    Raises:
        ValueError: unknown synset.
    """
    synset = get_synset(synset_name)
    best: tuple | None = None
    for path in synset.hypernym_paths():       # each path: root ... synset
        names = [node.name() for node in path[:-1]]
        kept = tuple(name for name in names if _is_basic(name))
        key = (-len(kept), -len(path), names)
        if best is None or key < best[0]:
            best = (key, kept)
    return (best[1] if best else ()) + (synset_name,)


def _clean(word: str) -> str:
    """Keyword fields separate by commas and hierarchy levels by "|": neither may be inside."""
    return " ".join(word.replace(",", " ").replace("|", " ").split())


def keyword_path(synset_name: str, lang: str = "eng") -> list[str]:
    """A synset's keyword hierarchy, general -> specific, in a WordNet language.

    The synsets of `hypernym_path` as keywords in `lang` (`helpers.wordnet.keywords.keyword`); a synset
    with no lemma in `lang` is skipped (never an English word in another language), and a keyword
    already in the path is not repeated. When the synset itself has no lemma in `lang`,
    the path ends at its nearest ancestor that has one. Join with "|" for XMP
    `lr:hierarchicalSubject`.

    `keyword_path("golden_retriever.n.01")` is ["animal", "vertebrate", "mammal", "dog",
    "golden retriever"]; in "fra" ["bête", "vertébré", "mammifère", "chien", "golden retriever"]
    (the words `helpers.wordnet.keywords.keyword` chooses), in "spa" ["criatura", "vertebrado", "mammalia",
    "perro"] (Spanish OMW has no lemma for golden_retriever.n.01: the path ends at "perro").

    Raises:
        ValueError: unknown synset or language.
    """
    words: list[str] = []
    for name in hypernym_path(synset_name):
        word = keyword(name, lang, fallback="none")
        if word:
            word = _clean(word)
            if word and word.casefold() not in {given.casefold() for given in words}:
                words.append(word)
    return words


# --- the ImageNet hierarchy -----------------------------------------------------------------
class ImageNetHierarchy:
    """The 1,000 ImageNet classes and every WordNet synset above them, as a leaf -> synset
    incidence matrix.

    Attributes:
        leaf_names: the 1,000 class synset names, class-index order ("tench.n.01", ...).
        synset_names: all S synset names (S = 1,860): the 1,000 classes first, in class order
            (column i < 1000 is class i), then their ancestors sorted by name.
        incidence: float32 `[1000, S]`, 1.0 where class i is the synset or below it (once, however
            many hypernym paths join them).
        leaf_counts: int32 `[S]`, classes at or below each synset (1 for a class, 1000 for entity).
        depths: int16 `[S]`, WordNet depth (`depth`: shortest path from entity.n.01).
        information_gain: float32 `[S]`, `log2(1000) - log2(leaf_counts)` in bits (Deng et al.
            2012's reward: 0 for entity.n.01, 9.97 for a class).
    """

    def __init__(self, wnids: Sequence[str] | None = None):
        """
        Args:
            wnids: the class WordNet ids in class order (default: `imagenet_wnids()`).

        Raises:
            ValueError: an id that is not a WordNet 3.0 noun offset.
        """
        reader = wordnet()
        wnids = list(imagenet_wnids() if wnids is None else wnids)
        leaves = []
        for wnid in wnids:
            try:
                leaves.append(reader.synset_from_pos_and_offset("n", int(wnid[1:])).name())
            except Exception as error:  # WordNetError, ValueError: report which id
                raise ValueError(f"{wnid!r} is not a WordNet 3.0 noun id ('n' + 8-digit offset)"
                                 ) from error
        self.leaf_names: list[str] = leaves
        above = sorted(set().union(*(ancestors(name) for name in leaves)) - set(leaves))
        self.synset_names: list[str] = leaves + above
        self._index = {name: column for column, name in enumerate(self.synset_names)}
        self.incidence = np.zeros((len(leaves), len(self.synset_names)), dtype=np.float32)
        for row, name in enumerate(leaves):
            columns = [self._index[name]] + [self._index[a] for a in ancestors(name)]
            self.incidence[row, columns] = 1.0   # a set of columns: each ancestor counted once
        self.leaf_counts = self.incidence.sum(axis=0).astype(np.int32)            # [S]
        self.depths = np.array([depth(name) for name in self.synset_names], dtype=np.int16)
        self.information_gain = (math.log2(len(leaves))
                                 - np.log2(self.leaf_counts)).astype(np.float32)

    def __len__(self) -> int:
        return len(self.synset_names)

    def __contains__(self, synset_name: str) -> bool:
        return synset_name in self._index

    def __repr__(self) -> str:
        return f"ImageNetHierarchy({len(self.leaf_names)} classes, {len(self)} synsets)"

    def index(self, synset_name: str) -> int:
        """Column of a synset. Raises `KeyError` if it is not a class or above one."""
        try:
            return self._index[synset_name]
        except KeyError:
            raise KeyError(f"{synset_name!r} is neither an ImageNet class nor above one") from None

    def leaf_count(self, synset_name: str) -> int:
        """ImageNet classes at or below a synset (0 for a synset outside the hierarchy)."""
        column = self._index.get(synset_name)
        return 0 if column is None else int(self.leaf_counts[column])

    def leaves_below(self, synset_name: str) -> frozenset[int]:
        """Class indices at or below a synset (empty outside the hierarchy)."""
        column = self._index.get(synset_name)
        return frozenset() if column is None else frozenset(
            np.flatnonzero(self.incidence[:, column]).tolist())

    def propagate(self, class_probabilities) -> np.ndarray:
        """Hierarchical probabilities: each synset's = the sum over the classes below it.

        Args:
            class_probabilities: float `[..., 1000]` (softmax of the classifier's logits).

        Returns:
            float32 `[..., S]`, columns in `synset_names` order (the first 1,000 are the input).

        Raises:
            ValueError: the last axis is not 1,000 long.
        """
        probabilities = np.asarray(class_probabilities, dtype=np.float32)
        if probabilities.shape[-1:] != (len(self.leaf_names),):
            raise ValueError(f"expected class probabilities of shape [..., "
                             f"{len(self.leaf_names)}], got {probabilities.shape}")
        return probabilities @ self.incidence                      # [..., 1000] @ [1000, S]

    def probabilities(self, class_probabilities) -> dict[str, float]:
        """`{synset name: hierarchical probability}` of ONE image (float `[1000]`), the map
        `specific_keywords` takes."""
        row = self.propagate(class_probabilities)
        if row.ndim != 1:
            raise ValueError(f"one image at a time: expected shape [1000], got "
                             f"{np.shape(class_probabilities)}")
        return dict(zip(self.synset_names, row.tolist()))


@functools.cache
def imagenet_hierarchy() -> ImageNetHierarchy:
    """The `ImageNetHierarchy` of `imagenet_wnids()`, built once per process (~0.5 s)."""
    return ImageNetHierarchy()


def class_names(lang: str = "eng") -> list[str | None]:
    """The keyword of each of the 1,000 classes in class order (the raw baseline a plain
    ImageNet tagger shows): `helpers.wordnet.keywords.keyword(class, lang)` with its hypernym fallback;
    None where neither the class nor a near hypernym has a lemma in `lang`."""
    return [keyword(name, lang) for name in imagenet_hierarchy().leaf_names]


# --- keyword selection ----------------------------------------------------------------------
@functools.cache
def _leaf_set(synset_name: str) -> frozenset[int]:
    return imagenet_hierarchy().leaves_below(synset_name)


@functools.cache
def information_gain(synset_name: str) -> float:
    """Deng et al.'s reward in bits: `log2(1000) - log2(classes at or below the synset)`.

    A synset with no ImageNet class below it (a trained model's "grass.n.01") counts as one
    class: as specific as a leaf.
    """
    return math.log2(NUM_CLASSES) - math.log2(max(1, imagenet_hierarchy().leaf_count(synset_name)))


def _related(first: str, second: str) -> bool:
    """One is a hypernym of the other, or both are above a same ImageNet class."""
    return (first in ancestors(second) or second in ancestors(first)
            or not _leaf_set(first).isdisjoint(_leaf_set(second)))


def consistent_probabilities(synset_probabilities: Mapping[str, float],
                             floor: float = 0.0) -> dict[str, float]:
    """Each synset's probability raised to the highest probability of a synset below it.

    A general concept is at least as probable as any specific one it includes (dog.n.01 >=
    golden_retriever.n.01). `ImageNetHierarchy.probabilities` already holds this; a map mixing
    them with a trained model's independent (sigmoid) probabilities may not, e.g. "man.n.01" 0.8
    above "person.n.01" 0.6. Only synsets of the map are raised; none is added or lowered.

    Args:
        synset_probabilities: synset name -> probability.
        floor: only synsets with a probability >= `floor` raise their ancestors (faster; exact
            for every synset whose raised probability is >= `floor`).

    Raises:
        ValueError: a key that is not a WordNet synset name.
    """
    raised = {name: float(probability) for name, probability in synset_probabilities.items()}
    for name, probability in synset_probabilities.items():
        if probability < floor:
            continue
        for above in ancestors(name):
            if above in raised and raised[above] < probability:
                raised[above] = float(probability)
    return raised


def _chain(name: str, lang: str, translate: Callable[[str, str], str | None] | None
           ) -> list[tuple[str, str]]:
    """`[(synset, keyword)]` of `hypernym_path(name)`, general -> specific, consecutive
    repeats dropped. With the default `translate`, a synset without a lemma in `lang` is
    skipped (as in `keyword_path`), so a fallback word never comes after a more specific one."""
    chain: list[tuple[str, str]] = []
    for synset in hypernym_path(name):
        word = (keyword(synset, lang, fallback="none") if translate is None
                else translate(synset, lang))
        word = _clean(word) if word else ""
        if word and (not chain or chain[-1][1].casefold() != word.casefold()):
            chain.append((synset, word))
    return chain


def specific_keywords(
    synset_probabilities: Mapping[str, float],
    nb_keywords: int = 5,
    min_proba: float = MIN_PROBA,
    lang: str = "eng",
    chain: bool = False,
    translate: Callable[[str, str], str | None] | None = None,
    hedging_lambda: float = HEDGING_LAMBDA,
    at_least_one: bool = True,
) -> list[tuple[str, str, float]]:
    """Confident and specific keywords from hierarchical probabilities (Deng et al. 2012).

    Rule (module docstring): after `consistent_probabilities`, the candidate synsets
    (`is_keyword_candidate`: informative, above at most `MAX_KEYWORD_CLASSES` classes) are ranked by decreasing
    `(information_gain(v) + hedging_lambda) * p(v)`
    (ties: the deeper synset, then the name) and taken in that order when `p(v) >= min_proba`,
    passing over a synset related to one already taken (a hypernym or hyponym of it, or above a
    same ImageNet class), one without a keyword in `lang`, and a keyword already given
    (case-insensitive). Commas and "|" become spaces. When no synset reaches `min_proba` and
    `at_least_one`, the best-ranked synset that has a keyword is given alone, whatever its
    probability: like DARTS, the selector always answers, hedging to a general synset when unsure.

    With `chain=True`, each keyword comes with its `hypernym_path` ancestors that were not given
    yet, general -> specific ("animal", "vertebrate", "mammal", "dog", "golden retriever"); an
    ancestor's probability is its own in the map or, when the map lacks it, that of its
    descendant (a lower bound). `nb_keywords` counts the chosen (most specific) keywords only.

    Args:
        synset_probabilities: synset name -> probability in [0, 1]: an image's
            `ImageNetHierarchy.probabilities`, a trained model's, or both merged (the higher
            probability per synset).
        nb_keywords: at most this many chosen keywords (0: none).
        min_proba: confidence threshold in [0, 1] on each keyword's (hierarchical) probability.
        lang: Open Multilingual Wordnet code ("eng", "fra", "spa", ...).
        chain: give each keyword's ancestors too, general -> specific.
        translate: `(synset, lang) -> keyword or None`; default `helpers.wordnet.keywords.keyword`
            (nearest hypernym with a lemma in `lang`, never an English word; in chains, synsets
            without a lemma in `lang` are skipped instead, as in `keyword_path`).
        hedging_lambda: DARTS's lambda in bits (default `HEDGING_LAMBDA`, log2(1000)): 0
            maximises the expected information gain; larger values prefer more general, more
            probable synsets.
        at_least_one: give the best keyword even below `min_proba` when nothing passes it.

    Returns:
        `[(synset, keyword, probability), ...]`, most important (highest score) first; with
        `chain`, each keyword's chain general -> specific, keywords in that order.

    Raises:
        ValueError: a key that is not a WordNet synset name, an unknown language, `min_proba`
            outside [0, 1] or a negative `nb_keywords`.
    """
    if not 0.0 <= min_proba <= 1.0:
        raise ValueError(f"min_proba is a probability in [0, 1], got {min_proba}")
    if nb_keywords < 0:
        raise ValueError(f"nb_keywords must be >= 0, got {nb_keywords}")
    word_of = translate if translate is not None else keyword
    positive = {name: float(p) for name, p in synset_probabilities.items() if float(p) > 0.0}

    def ranked(probabilities: dict[str, float], floor: float) -> list[str]:
        """Informative synsets with probability >= floor, best score first (a tie: the more
        specific synset, "traffic light" before "light", then the name)."""
        return sorted(
            (name for name, p in probabilities.items() if p >= floor and is_keyword_candidate(name)),
            key=lambda name: (-(information_gain(name) + hedging_lambda) * probabilities[name],
                              -depth(name), name))

    def usable(name: str, taken: list[tuple[str, str, float]]) -> str:
        """The synset's keyword if it may join `taken`, else ""."""
        if any(_related(name, other) for other, _, _ in taken):
            return ""
        word = word_of(name, lang)
        word = _clean(word) if word else ""
        return "" if word.casefold() in {w.casefold() for _, w, _ in taken} else word

    probabilities = consistent_probabilities(positive, floor=min_proba)
    chosen: list[tuple[str, str, float]] = []
    for name in ranked(probabilities, min_proba):
        if len(chosen) >= nb_keywords:
            break
        if word := usable(name, chosen):
            chosen.append((name, word, probabilities[name]))
    if not chosen and at_least_one and nb_keywords > 0 and min_proba > 0.0:
        probabilities = consistent_probabilities(positive)
        chosen = next(([(name, word, probabilities[name])]
                       for name in ranked(probabilities, 0.0) if (word := usable(name, []))), [])
    if not chain:
        return chosen

    chained: list[tuple[str, str, float]] = []
    given: set[str] = set()
    for name, word, probability in chosen:
        links = _chain(name, lang, translate)
        if translate is not None or not links:
            # the chosen synset shows last, under the word `translate` gave it
            links = [(s, w) for s, w in links if s != name and w.casefold() != word.casefold()]
            links.append((name, word))
        for synset, link_word in links:
            if link_word.casefold() in given:
                continue
            given.add(link_word.casefold())
            chained.append((synset, link_word, max(probabilities.get(synset, 0.0), probability)))
    return chained
