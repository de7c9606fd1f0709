"""Tests of helpers/data/nltk_data.py: finds the offline copy, downloads into data/nltk_data, explains
what to do when neither works. `nltk.download` is replaced where the network would be needed."""

from __future__ import annotations

import shutil
import time

import nltk
import pytest

from helpers.data import nltk_data
from helpers.data.nltk_data import NltkDataMissing, ensure_nltk_data


@pytest.fixture
def fresh_cache(monkeypatch):
    monkeypatch.setattr(nltk_data, "_found", set())


def test_finds_every_package_of_the_offline_copy(shared_data, fresh_cache):
    ensure_nltk_data()  # wordnet, omw (2.0 here), zipped stopwords, punkt_tab
    assert nltk_data._found == set(nltk_data.DEFAULT_PACKAGES)
    ensure_nltk_data(["omw-1.4", "omw-2.0"])  # both name the OMW this NLTK reads
    assert nltk_data.OMW_PACKAGE == "omw-2.0"  # NLTK 3.10
    start = time.perf_counter()
    for _ in range(100):
        ensure_nltk_data()
    assert time.perf_counter() - start < 0.05  # cheap once found
    from nltk.corpus import stopwords, wordnet

    assert "the" in stopwords.words("english")
    assert wordnet.synsets("circle", "n")[0].name() == "circle.n.01"


def test_downloads_missing_package_into_project_folder(shared_data, tmp_path, monkeypatch,
                                                        fresh_cache):
    monkeypatch.setattr(nltk.data, "path", [str(tmp_path / "empty")])
    monkeypatch.setattr(nltk_data, "NLTK_DATA_DIR", tmp_path / "nltk_data")
    calls = []

    def offline_download(package, download_dir, **kwargs):  # what nltk.download leaves on disk
        calls.append(package)
        (tmp_path / "nltk_data" / "corpora").mkdir(parents=True, exist_ok=True)
        shutil.copy(shared_data.parent / "nltk_data" / "corpora" / "stopwords.zip",
                    f"{download_dir}/corpora/stopwords.zip")
        return True

    monkeypatch.setattr(nltk, "download", offline_download)
    ensure_nltk_data(["stopwords"])
    assert calls == ["stopwords"]
    assert str(tmp_path / "nltk_data") in nltk.data.path
    assert nltk.data.find("corpora/stopwords.zip")


def test_offline_and_missing_says_how_to_fix(tmp_path, monkeypatch, fresh_cache):
    monkeypatch.setattr(nltk.data, "path", [str(tmp_path / "empty")])
    monkeypatch.setattr(nltk_data, "NLTK_DATA_DIR", tmp_path / "nltk_data")
    monkeypatch.setattr(nltk, "download", lambda *args, **kwargs: False)  # no network
    with pytest.raises(NltkDataMissing) as error:
        ensure_nltk_data(["wordnet", "punkt_tab"])
    message = str(error.value)
    assert "['wordnet', 'punkt_tab']" in message
    assert "python -m nltk.downloader -d data/nltk_data wordnet punkt_tab" in message
    assert "NLTK_DATA" in message
    assert isinstance(error.value, RuntimeError)


@pytest.mark.filterwarnings("ignore:The multilingual functions are not available")   # no OMW reader here
def test_wordnet_reads_from_two_threads_are_the_synsets_read_alone(shared_data):
    """Two threads reading synsets of one WordNet reader at once got each other's lines
    (nltk/nltk#2335; it broke `tag-album --captions` once, the decoder warming up in a thread);
    `serialise_wordnet_reads`, done on import, makes each read whole."""
    import concurrent.futures

    from nltk.corpus.reader.wordnet import WordNetCorpusReader

    ensure_nltk_data(["wordnet"])
    assert getattr(WordNetCorpusReader, "_serialised_by_helpers", False)
    root = nltk.data.find("corpora/wordnet")

    def offsets(reader):
        return sorted({offset for lemma in reader._lemma_pos_offset_map.values() for offset in lemma.get("n", ())})

    reference = WordNetCorpusReader(root, None)
    wanted = offsets(reference)[:6000]
    alone = [reference.synset_from_pos_and_offset("n", offset).name() for offset in wanted]
    reader = WordNetCorpusReader(root, None)               # nothing read yet: every synset from the file
    with concurrent.futures.ThreadPoolExecutor(max_workers=2) as pool:
        halves = list(pool.map(lambda part: [reader.synset_from_pos_and_offset("n", offset).name() for offset in part],
                               (wanted[0::2], wanted[1::2])))
    together = [None] * len(wanted)
    together[0::2], together[1::2] = halves
    assert together == alone
