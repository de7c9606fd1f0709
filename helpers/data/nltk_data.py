"""Make sure the NLTK data the project reads (WordNet, Open Multilingual Wordnet, stopwords,
Punkt tokenizer tables) is installed, downloading what is missing into `data/nltk_data`.

`ensure_nltk_data()` is cheap once everything is found (a few `nltk.data.find` calls, then a
cached answer), so every module that reads NLTK data calls it first. On a machine without
network, point `NLTK_DATA` at a copy (tests and CI use `../shared/nltk_data`) or install offline:

    python -m nltk.downloader -d data/nltk_data wordnet omw-2.0 stopwords punkt_tab

(`omw-2.0` for NLTK 3.10; older NLTK reads `omw-1.4`.)
"""

from __future__ import annotations

import contextlib
import functools
import io
import logging
import threading
from collections.abc import Iterable

import nltk

from helpers.config import DATA_DIR

logger = logging.getLogger(__name__)

NLTK_DATA_DIR = DATA_DIR / "nltk_data"   # where missing packages are downloaded


def _omw_package() -> str:
    """The Open Multilingual Wordnet package this NLTK's `wordnet` reader loads.

    NLTK 3.10 reads `omw-2.0`, older releases `omw-1.4`; the name is read from the lazy loader
    of `nltk.corpus.wordnet` (an NLTK internal, hence the fallback).
    """
    arguments = getattr(nltk.corpus.wordnet, "_LazyCorpusLoader__args", ())
    name = getattr(arguments[0], "_LazyCorpusLoader__name", None) if arguments else None
    return name if isinstance(name, str) and name.startswith("omw") else "omw-2.0"


OMW_PACKAGE = _omw_package()
# Package name (as `nltk.download` knows it) -> resource paths any of which proves it installed
# (`nltk.data.find` does not look inside `.zip` files unless asked for the zip).
RESOURCES: dict[str, tuple[str, ...]] = {
    "wordnet": ("corpora/wordnet", "corpora/wordnet.zip"),
    OMW_PACKAGE: (f"corpora/{OMW_PACKAGE}", f"corpora/{OMW_PACKAGE}.zip"),
    "stopwords": ("corpora/stopwords", "corpora/stopwords.zip"),
    "punkt_tab": ("tokenizers/punkt_tab", "tokenizers/punkt_tab.zip"),
}
DEFAULT_PACKAGES = tuple(RESOURCES)
# Names accepted for the OMW package: callers may ask for either version, they get NLTK's.
OMW_ALIASES = {"omw": OMW_PACKAGE, "omw-1.4": OMW_PACKAGE, "omw-2.0": OMW_PACKAGE}

_found: set[str] = set()   # packages already located in this process


_WORDNET_LOCK = threading.RLock()


def serialise_wordnet_reads() -> None:
    """Make NLTK's WordNet reader safe to use from several threads (idempotent; done on import).

    `WordNetCorpusReader.synset_from_pos_and_offset` seeks in a data file shared by all its
    callers, then reads a line: two threads interleaved read each other's lines ("WordNetError:
    line '04176528 06 n 01 set ... | a member of a learned society'", nltk/nltk#2335). The concept
    decoder is loaded and warmed up in a thread while the photos are tagged
    (`ConceptCaptioner.predict`), and both read WordNet. Each read, and each first load of an Open
    Multilingual Wordnet language (`_load_lang_data`), now holds one lock; cached synsets are
    returned without it.
    """
    from nltk.corpus.reader import wordnet as reader

    cls = reader.WordNetCorpusReader
    if getattr(cls, "_serialised_by_helpers", False):
        return
    read, load_language = cls.synset_from_pos_and_offset, cls._load_lang_data

    @functools.wraps(read)
    def synset_from_pos_and_offset(self, pos, offset):
        cached = self._synset_offset_cache[pos].get(offset)
        if cached is not None:
            return cached
        with _WORDNET_LOCK:
            return read(self, pos, offset)

    @functools.wraps(load_language)
    def _load_lang_data(self, lang):
        with _WORDNET_LOCK:
            return load_language(self, lang)

    cls.synset_from_pos_and_offset = cls._synset_from_pos_and_offset = synset_from_pos_and_offset
    cls._load_lang_data = _load_lang_data
    cls._serialised_by_helpers = True


serialise_wordnet_reads()


class NltkDataMissing(RuntimeError):
    """NLTK data packages are neither installed nor downloadable; the message says how to fix it."""


def _installed(package: str) -> bool:
    for resource in RESOURCES.get(package, (f"corpora/{package}", f"corpora/{package}.zip")):
        try:
            nltk.data.find(resource)
            return True
        except LookupError:
            continue
    return False


def ensure_nltk_data(packages: Iterable[str] = DEFAULT_PACKAGES) -> None:
    """Find each NLTK package on `nltk.data.path`; download missing ones into `data/nltk_data`.

    Args:
        packages: NLTK package names (default: wordnet, the OMW version this NLTK reads
            (`omw-1.4` and `omw-2.0` both mean it), stopwords, punkt_tab).

    Raises:
        NltkDataMissing: a package is still missing after the download attempt (e.g. offline),
            listing the packages and the offline fix.
    """
    wanted = [OMW_ALIASES.get(p, p) for p in packages]
    missing = [p for p in wanted if p not in _found and not _installed(p)]
    _found.update(p for p in wanted if p not in missing)
    if not missing:
        return
    NLTK_DATA_DIR.mkdir(parents=True, exist_ok=True)
    if str(NLTK_DATA_DIR) not in nltk.data.path:
        nltk.data.path.append(str(NLTK_DATA_DIR))
    still_missing = []
    for package in missing:
        if not _installed(package):  # the project folder may already have it
            logger.info("downloading NLTK package %s into %s", package, NLTK_DATA_DIR)
            with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
                try:
                    nltk.download(package, download_dir=str(NLTK_DATA_DIR), quiet=True,
                                  raise_on_error=False)
                except Exception as error:  # noqa: BLE001 - any network failure: report below
                    logger.info("nltk.download(%r) failed: %s", package, error)
        if _installed(package):
            _found.add(package)
        else:
            still_missing.append(package)
    if still_missing:
        names = " ".join(still_missing)
        raise NltkDataMissing(
            f"NLTK data packages {still_missing} are not installed and could not be downloaded "
            f"into {NLTK_DATA_DIR} (no network?). Searched: {nltk.data.path}. Fix: on a connected "
            f"machine run `python -m nltk.downloader -d data/nltk_data {names}` and copy "
            f"data/nltk_data here, or set NLTK_DATA to a folder that has them.")
