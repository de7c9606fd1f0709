"""Words -> WordNet synsets, and an image's tag synsets (the training targets).

The tag vocabulary is `helpers.wordnet.synset_vocabulary`; keywords in a language are `helpers.wordnet.keywords`.

A photo's tags are WordNet noun synsets ("dog.n.01"), not words: synonyms share one tag
("couch" and "sofa" are both `sofa.n.01`), a tag can be shown in any Open Multilingual Wordnet
language (`helpers.wordnet.keywords.keyword("dog.n.01", "fra") == "chien"`), and tags can be generalised along WordNet's
hypernyms (dog -> canine -> carnivore -> ... -> animal).

Word -> synset (`SynsetMapper.map_word`), in this order:

1. `SENSE_OVERRIDES[word]` when present (a synset, or None for "never a tag").
2. English stopwords (NLTK's list) and tokens that are not alphabetic -> None.
3. The word is lemmatised as a noun with WordNet's morphy ("dogs" -> "dog"), preferring the
   singular where WordNet also lists the plural as a lemma of its own ("hands" -> "hand", not
   `hands.n.01`, guardianship); no noun lemma -> None. `SENSE_OVERRIDES[lemma]` applies too.
4. A word naming one of the 80 COCO categories takes that category's synset
   (`COCO_CATEGORY_SYNSETS`: "mouse" is the computer mouse, "kite" the toy).
5. Part-of-speech filter: captions are full of verbs ("sitting", "holding") and adjectives
   ("large", "young") that also have rare noun senses ("sitting.n.01: the act of posing for a
   photograph", "large.n.01: a garment size"). Using WordNet's tagged-sense counts (SemCor,
   `Lemma.count()`), a word is dropped when its verb, adjective or adverb reading is counted more
   than `POS_RATIO` (3) times as often as its noun reading ("building" stays: 52 noun vs 139 verb).
6. Otherwise the FIRST noun synset of the lemma: WordNet lists senses by frequency, so this is
   the most frequent sense (the usual baseline for word-sense disambiguation, e.g. Navigli,
   "Word Sense Disambiguation: a survey", ACM Computing Surveys 2009, section 7.2).

Two-word names are looked up before single words ("hot dog" is `hotdog.n.02`, not a dog;
"teddy bear", "fire hydrant", "living room", "tennis court"): a pair of adjacent caption tokens
whose underscore-joined form (second word lemmatised) is a WordNet noun, a COCO category or a
`SENSE_OVERRIDES` key maps as one name and its two words are not mapped on their own; except
when either word is a stopword ("laying on") or, for names that are neither COCO categories nor
overrides, when the first word is mostly an adjective ("black cat" is not `fisher.n.02`, a
marten; "young man" is a man).

Everything is memoised per distinct word (`SynsetMapper.cache`), never per occurrence.
"""

from __future__ import annotations

import collections
import functools
from collections.abc import Iterable, Mapping, Sequence

from helpers.data import nltk_data
from helpers.text.vocab import tokenize
from helpers.wordnet.senses import COCO_CATEGORY_SYNSETS, SENSE_OVERRIDES

# --- WordNet access -------------------------------------------------------------------------
_WORDNET_PACKAGES = ("wordnet", "omw-1.4", "stopwords")


@functools.cache
def wordnet():
    """NLTK's WordNet reader, after making sure the NLTK data is installed.

    Raises:
        helpers.data.nltk_data.NltkDataMissing: WordNet / OMW / stopwords are missing and cannot be
            downloaded (the message says how to install them offline).
    """
    nltk_data.ensure_nltk_data(_WORDNET_PACKAGES)
    from nltk.corpus import wordnet as reader

    reader.ensure_loaded()
    return reader


# caption languages (ISO 639-3) -> NLTK's stopword list
_STOPWORD_LISTS = {"eng": "english", "fra": "french", "deu": "german"}


@functools.cache
def stopwords(language: str = "eng") -> frozenset[str]:
    """NLTK's stopword list of a caption language, lower case: articles, pronouns, prepositions,
    auxiliaries ("a", "the", "on"; "le", "d", "une"; "einem", "auf").

    Args:
        language: ISO 639-3 code, "eng", "fra" or "deu".

    Raises:
        KeyError: another language.
        helpers.data.nltk_data.NltkDataMissing: the stopwords package is missing and cannot be
            downloaded.
    """
    name = _STOPWORD_LISTS[language]
    wordnet()  # makes sure the stopwords package is installed
    from nltk.corpus import stopwords as reader

    return frozenset(reader.words(name))


def english_stopwords() -> frozenset[str]:
    """NLTK's English stopword list ("a", "the", "on", ...)."""
    return stopwords("eng")


def get_synset(name: str):
    """The `nltk` Synset called `name` ("dog.n.01").

    Raises:
        ValueError: if WordNet has no synset of that name.
    """
    from nltk.corpus.reader.wordnet import WordNetError

    try:
        return wordnet().synset(name)
    except (WordNetError, ValueError) as error:
        raise ValueError(f"{name!r} is not a WordNet synset name like 'dog.n.01' ({error})") from error


_SS_TYPES = {"1": "n", "2": "v", "3": "a", "4": "r", "5": "a"}   # sense-key digit -> POS


@functools.cache
def tagged_counts() -> dict[tuple[str, str], int]:
    """`{(lemma, pos): count}`: how often SemCor tagged each lemma with each part of speech.

    Read once from WordNet's `cntlist.rev` (what `Lemma.count()` reads one line at a time,
    ~1 ms per call); pos is "n", "v", "a" (adjectives and satellites) or "r".
    """
    counts: collections.Counter = collections.Counter()
    with wordnet().open("cntlist.rev") as lines:
        for line in lines:
            sense_key, _, count = line.split()
            lemma, _, rest = sense_key.partition("%")
            counts[(lemma.lower(), _SS_TYPES[rest[0]])] += int(count)
    return dict(counts)


POS_RATIO = 3   # a word is dropped when another part of speech is counted > 3x its noun sense


def _coco_key(name: str) -> str:
    return name.replace(" ", "_")


class SynsetMapper:
    """Maps caption words to WordNet noun synset names (see the module docstring for the rule).

    Attributes:
        cache: `{word: synset name or None}`, one entry per distinct word ever mapped.
        overrides: the `SENSE_OVERRIDES` in use.
    """

    def __init__(self, overrides: Mapping[str, str | None] | None = None,
                 pos_ratio: float | None = POS_RATIO, collocations: bool = True):
        """
        Args:
            overrides: word (or lemma, or "word_word") -> synset name or None; default
                `SENSE_OVERRIDES`.
            pos_ratio: part-of-speech filter threshold (None: no filter, keep every noun).
            collocations: look up two-word names ("hot dog") before single words.
        """
        self.overrides = dict(SENSE_OVERRIDES if overrides is None else overrides)
        self.pos_ratio = pos_ratio
        self.collocations = collocations
        self.cache: dict[str, str | None] = {}
        self._lemmas: dict[str, str | None] = {}          # word -> noun lemma (same keys)
        self._pair_cache: dict[str, str | None] = {}      # "word_word" -> synset name
        self._wordnet = wordnet()
        self._stopwords = english_stopwords()
        self._coco = {_coco_key(name): synset for name, synset in COCO_CATEGORY_SYNSETS.items()}
        self._two_word_names: frozenset[str] | None = None

    def __len__(self) -> int:
        """Number of distinct words memoised."""
        return len(self.cache)

    # single words ----------------------------------------------------------------------------
    def map_word(self, word: str) -> str | None:
        """WordNet noun synset name of a caption word ("dogs" -> "dog.n.01"), or None.

        Several-word names are accepted too, with spaces or underscores ("hot dog",
        "teddy_bear": COCO categories, overrides, then WordNet's first noun sense).
        """
        try:
            return self.cache[word]
        except KeyError:
            synset = self.cache[word] = self._map_new_word(word)
            return synset

    def _noun_lemma(self, word: str) -> str | None:
        if word not in self._lemmas:
            lemma = None
            if word.isalpha() and word not in self._stopwords:
                # All base forms ("hands" -> ["hands", "hand"]): `morphy` returns the first, the
                # word itself when WordNet has the plural as a lemma ("hands": guardianship).
                # Take the singular, which is what a caption's plural means.
                forms = self._wordnet._morphy(word, self._wordnet.NOUN)
                lemma = next((form for form in forms if form != word), forms[0] if forms else None)
            self._lemmas[word] = lemma
        return self._lemmas[word]

    def _map_new_word(self, word: str) -> str | None:
        word = word.lower()
        if word in self.overrides:
            return self.overrides[word]
        name = "_".join(word.split())
        if "_" in name:   # a several-word name given as one "word": "hot dog", "teddy_bear"
            if name in self.overrides:
                return self.overrides[name]
            if name in self._coco:
                return self._coco[name]
            lemma = self._wordnet.morphy(name, self._wordnet.NOUN)
            return self._first_noun_sense(lemma) if lemma else None
        lemma = self._noun_lemma(word)
        if lemma is None:
            return None
        if lemma in self.overrides:
            return self.overrides[lemma]
        if word in self._coco or lemma in self._coco:
            return self._coco.get(word) or self._coco[lemma]
        if self.pos_ratio is not None and self._mostly_not_a_noun(word, lemma):
            return None
        return self._first_noun_sense(lemma)

    def _first_noun_sense(self, lemma: str) -> str | None:
        """Name of the lemma's first noun synset ("lemma.n.01" names it; parsing only that one
        synset is ~10x faster than `wordnet.synsets(lemma)`)."""
        from nltk.corpus.reader.wordnet import WordNetError

        try:
            return self._wordnet.synset(f"{lemma}.n.01").name()
        except WordNetError:
            return None

    @staticmethod
    def _tagged_count(lemma: str | None, pos: str) -> int:
        return 0 if lemma is None else tagged_counts().get((lemma.lower(), pos), 0)

    def _mostly_not_a_noun(self, word: str, noun_lemma: str) -> bool:
        wn = self._wordnet
        noun = self._tagged_count(noun_lemma, wn.NOUN)
        other = max(self._tagged_count(wn.morphy(word, pos), pos) for pos in (wn.VERB, wn.ADJ, wn.ADV))
        return other > self.pos_ratio * noun

    def _mostly_an_adjective(self, word: str) -> bool:
        wn = self._wordnet
        noun = self._tagged_count(self._noun_lemma(word), wn.NOUN)
        other = max(self._tagged_count(wn.morphy(word, pos), pos) for pos in (wn.ADJ, wn.ADV))
        return other > self.pos_ratio * noun if self.pos_ratio is not None else False

    # two-word names --------------------------------------------------------------------------
    def _pair_synset(self, first: str, second: str) -> tuple[bool, str | None]:
        """`(found, synset)` for the two-word name `first second` (second word lemmatised)."""
        if self._two_word_names is None:
            self._two_word_names = frozenset(
                name.lower() for name in self._wordnet.all_lemma_names(pos=self._wordnet.NOUN)
                if name.count("_") == 1)
        if not first.isalpha():
            return False, None
        candidates = [f"{first}_{second}"]
        lemma = self._noun_lemma(second)
        if lemma is not None and lemma != second:
            candidates.append(f"{first}_{lemma}")
        for key in candidates:  # explicit names first: COCO categories and overrides
            if key in self.overrides:
                return True, self.overrides[key]
            if key in self._coco:
                return True, self._coco[key]
        if first in self._stopwords or second in self._stopwords:
            return False, None   # "laying on", "looking at": WordNet nouns, not names here
        for key in candidates:
            if key in self._two_word_names:
                if self._mostly_an_adjective(first):
                    return False, None   # "black cat" is a black cat (not fisher.n.02)
                if key not in self._pair_cache:
                    self._pair_cache[key] = self._first_noun_sense(key)
                return True, self._pair_cache[key]
        return False, None

    # captions --------------------------------------------------------------------------------
    def map_tokens(self, tokens: Sequence[str]) -> list[tuple[str, str]]:
        """`[(word or "word word", synset name), ...]` for the tokens that map to a synset."""
        return [(" ".join(tokens[start:end]), synset) for start, end, synset in self.map_tokens_at(tokens)]

    def map_tokens_at(self, tokens: Sequence[str]) -> list[tuple[int, int, str]]:
        """`[(start, end, synset name), ...]`: the mentions `tokens[start:end]` (one word, or a
        two-word name) that map to a synset, in order."""
        mapped = []
        index, count = 0, len(tokens)
        while index < count:
            if self.collocations and index + 1 < count:
                found, synset = self._pair_synset(tokens[index], tokens[index + 1])
                if found:
                    if synset is not None:
                        mapped.append((index, index + 2, synset))
                    index += 2
                    continue
            synset = self.map_word(tokens[index])
            if synset is not None:
                mapped.append((index, index + 1, synset))
            index += 1
        return mapped

    def map_caption(self, caption: str) -> list[tuple[str, str]]:
        """`map_tokens(tokenize(caption))`: the words of a caption that name things, with synsets."""
        return self.map_tokens(tokenize(caption))

    def caption_synsets(self, caption: str) -> set[str]:
        """Set of synset names named in a caption."""
        return {synset for _, synset in self.map_tokens(tokenize(caption))}


def image_synsets(captions: Sequence[str], mapper: SynsetMapper, extra: Iterable[str] = (),
                  min_votes: int = 2) -> set[str]:
    """Synsets of one image, from its captions plus known object synsets.

    A caption-derived synset counts only when at least `min(min_votes, len(captions))` of the
    image's captions name it (so one annotator's stray word is not a tag); `extra` synsets
    (Visual Genome objects, COCO instance categories) always count.

    Args:
        captions: the image's captions (COCO has about 5).
        mapper: the `SynsetMapper` (its cache is shared across images).
        extra: synset names that always count.
        min_votes: captions that must agree.

    Returns:
        Set of synset names.
    """
    votes = collections.Counter()
    for caption in captions:
        votes.update(mapper.caption_synsets(caption))
    needed = max(1, min(min_votes, len(captions)))
    return {synset for synset, count in votes.items() if count >= needed} | set(extra)


def coco_category_synsets(categories: Iterable[str], mapper: SynsetMapper | None = None) -> set[str]:
    """Synsets of COCO category names (`ImageRecord.categories`).

    Args:
        categories: category names ("tv", "hot dog", ...).
        mapper: maps names that are not COCO categories (other datasets' categories, such as the
            sample's "circle") like caption text; without it such names raise.

    Raises:
        KeyError: a name that is not one of the 80 COCO categories, when no `mapper` is given.
    """
    synsets = set()
    for name in categories:
        if name in COCO_CATEGORY_SYNSETS:
            synsets.add(COCO_CATEGORY_SYNSETS[name])
        elif mapper is not None:
            synsets |= mapper.caption_synsets(name)
        else:
            raise KeyError(f"{name!r} is not a COCO category name; known: "
                           f"{sorted(COCO_CATEGORY_SYNSETS)} (pass a mapper for other names)")
    return synsets


def records_synsets(records: Sequence, mapper: SynsetMapper,
                    vg_synsets: Mapping[int, set[str]] | None = None, min_votes: int = 2,
                    progress: bool = True) -> list[set[str]]:
    """Synsets of every image of a dataset: `image_synsets` of its captions, with its instance
    categories (`coco_category_synsets`) and Visual Genome objects as `extra`.

    Args:
        records: `helpers.data.coco.ImageRecord`s (`captions`, `categories`, `image_id`).
        mapper: the shared `SynsetMapper`.
        vg_synsets: optional `{image_id: {synset, ...}}` (`helpers.data.vgenome.synsets_by_coco_id`).
        min_votes: see `image_synsets`.
        progress: show a progress bar.

    Returns:
        One set of synset names per record, in order.
    """
    from tqdm.auto import tqdm

    vg_synsets = vg_synsets or {}
    result = []
    for record in tqdm(records, desc="synsets", unit="image", disable=not progress, leave=False):
        extra = coco_category_synsets(record.categories, mapper) | set(
            vg_synsets.get(record.image_id, ()))
        result.append(image_synsets(record.captions, mapper, extra=extra, min_votes=min_votes))
    return result


# --- hypernym roll-up -----------------------------------------------------------------------
@functools.cache
def hypernyms(synset_name: str, depth: int = 1) -> frozenset[str]:
    """Hypernyms of a synset up to `depth` levels up (hypernyms and instance hypernyms).

    `hypernyms("dog.n.01", 1)` is {canine.n.02, domestic_animal.n.01}; depth 2 adds
    carnivore.n.01 and animal.n.01.
    """
    found: set[str] = set()
    level = [get_synset(synset_name)]
    for _ in range(depth):
        level = [parent for synset in level
                 for parent in synset.hypernyms() + synset.instance_hypernyms()]
        found.update(parent.name() for parent in level)
    return frozenset(found)


def with_hypernyms(synset_names: Iterable[str], depth: int = 1) -> set[str]:
    """The synsets plus their hypernyms up to `depth` levels: the roll-up rule.

    Rule: an image tagged with a synset is also tagged with every hypernym at most `depth`
    levels above it (following both `hypernyms()` and `instance_hypernyms()`), so an album can be
    searched with general words ("animal" finds the dogs at depth 2). Off by default
    (`SynsetVocabulary.build(..., hypernym_depth=0)`): general tags are frequent and would crowd
    the specific ones out of a classifier's top predictions.
    """
    synset_names = set(synset_names)
    if depth <= 0:
        return synset_names
    rolled = set(synset_names)
    for name in synset_names:
        rolled |= hypernyms(name, depth)
    return rolled
