"""Tests of helpers.metrics: the coco-caption toolkit's published scores, the read-only tokenizer,
and tagging metrics against hand-computed cases and their definition."""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from helpers import metrics

PROJECT_ROOT = Path(__file__).resolve().parent.parent
# The coco-caption toolkit's published scores for its "fakecap" results on these 1,000 val2014
# images (coco-caption README / cocoEvalCapDemo.ipynb): the specification of the caption metrics.
PUBLISHED_FAKECAP = {"BLEU-1": 0.579, "BLEU-2": 0.404, "BLEU-3": 0.279, "BLEU-4": 0.191,
                     "METEOR": 0.195, "ROUGE-L": 0.396, "CIDEr": 0.600}


def _fakecap_files(shared_data: Path) -> tuple[Path, Path]:
    folder = shared_data / "coco-val2014-captions-1000"
    return folder / "en_captions_val2014.json", folder / "en_captions_val2014_fakecap_results.json"


@pytest.fixture(scope="module")
def score_cli_run(shared_data, tmp_path_factory):
    """`python -m helpers score` on the toolkit's fakecap files, run once: (stdout, JSON written)."""
    from helpers.__main__ import main

    annotations, results = _fakecap_files(shared_data)
    out = tmp_path_factory.mktemp("score") / "metrics.json"
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        status = main(["score", "--annotations", str(annotations), "--results", str(results), "--out", str(out)])
    assert status == 0
    return buffer.getvalue(), json.loads(out.read_text())


def test_fakecap_scores_equal_the_toolkits_published_numbers(score_cli_run):
    _, written = score_cli_run
    assert written["num_images"] == 1000
    rounded = {name: round(written["scores"][name], 3) for name in PUBLISHED_FAKECAP}
    assert rounded == PUBLISHED_FAKECAP
    # SPICE either ran (jars installed) or says why not; it never breaks the others.
    assert "SPICE" in written["scores"] or "CoreNLP" in written["unavailable"]["SPICE"]


def test_score_cli_prints_a_table_of_every_metric(score_cli_run):
    printed, _ = score_cli_run
    assert "1000 images scored" in printed
    for name, value in PUBLISHED_FAKECAP.items():
        assert any(line.split() == [name, f"{value:.3f}"] for line in printed.splitlines()), name


def test_evaluate_captions_equals_pycocoevalcap_run_directly(shared_data):
    """Dict inputs, a 25-image subset: same numbers as the toolkit's own classes, image by image."""
    from pycocoevalcap.bleu.bleu import Bleu
    from pycocoevalcap.cider.cider import Cider
    from pycocoevalcap.meteor.meteor import Meteor
    from pycocoevalcap.rouge.rouge import Rouge
    from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer as ToolkitTokenizer
    from pycocotools.coco import COCO

    annotations_path, results_path = _fakecap_files(shared_data)
    annotations = json.loads(annotations_path.read_text())
    results = json.loads(results_path.read_text())[:25]
    ours = metrics.evaluate_captions(annotations, results, spice=False)

    coco = COCO(str(annotations_path))
    coco_results = coco.loadRes([dict(r) for r in results])
    ids = coco_results.getImgIds()
    gts = ToolkitTokenizer().tokenize({i: coco.imgToAnns[i] for i in ids})
    res = ToolkitTokenizer().tokenize({i: coco_results.imgToAnns[i] for i in ids})
    expected = {}
    bleu, bleu_per_image = Bleu(4).compute_score(gts, res, verbose=0)
    expected.update({f"BLEU-{n + 1}": value for n, value in enumerate(bleu)})
    expected["METEOR"], _ = Meteor().compute_score(gts, res)
    expected["ROUGE-L"], _ = Rouge().compute_score(gts, res)
    expected["CIDEr"], cider_per_image = Cider().compute_score(gts, res)

    assert ours.num_images == 25
    assert ours.scores == pytest.approx(expected, abs=1e-12)
    assert [ours.per_image[i]["CIDEr"] for i in gts] == pytest.approx(list(cider_per_image), abs=1e-12)
    assert [ours.per_image[i]["BLEU-4"] for i in gts] == pytest.approx(bleu_per_image[3], abs=1e-12)
    assert ours.unavailable == {}  # spice=False: not asked for, so not reported


def test_evaluate_captions_rejects_bad_results_with_clear_errors(shared_data):
    annotations, _ = _fakecap_files(shared_data)
    with pytest.raises(ValueError, match="not in the annotations"):
        metrics.evaluate_captions(annotations, [{"image_id": -7, "caption": "a cat"}], spice=False)
    twice = [{"image_id": 331352, "caption": "a toilet"}, {"image_id": 331352, "caption": "a sink"}]
    with pytest.raises(ValueError, match="more than one caption"):
        metrics.evaluate_captions(annotations, twice, spice=False)
    with pytest.raises(FileNotFoundError):
        metrics.evaluate_captions(annotations, "/nonexistent/results.json")


def test_spice_required_but_missing_raises_metric_unavailable(shared_data):
    available, reason = metrics.spice_status()
    if available:
        pytest.skip("SPICE's jars are installed here; nothing unavailable to report")
    annotations, _ = _fakecap_files(shared_data)
    with pytest.raises(metrics.MetricUnavailable, match="CoreNLP"):
        metrics.evaluate_captions(annotations, [{"image_id": 331352, "caption": "a toilet"}], spice=True)


# --- the PTB tokenizer in a read-only site-packages --------------------------------------------

_TOKENIZE_SCRIPT = textwrap.dedent("""
    import json, sys
    from helpers.metrics import PTBTokenizer
    from pycocoevalcap.tokenizer import ptbtokenizer
    from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer as ToolkitTokenizer
    captions = {1: [{"caption": "A man's bike, parked (outside)."}], 2: [{"caption": "Two DOGS -- playing!"}]}
    try:
        ToolkitTokenizer().tokenize(captions)
        toolkit = "worked"
    except OSError as error:
        toolkit = type(error).__name__
    print(json.dumps({"package": ptbtokenizer.__file__, "toolkit": toolkit,
                      "ours": PTBTokenizer().tokenize(captions)}))
""")


def test_ptb_tokenizer_works_when_site_packages_is_read_only(tmp_path):
    from pycocoevalcap import eval as toolkit_eval  # pycocoevalcap is a namespace package: no __file__

    source = Path(toolkit_eval.__file__).resolve().parent
    readonly = tmp_path / "readonly"
    package = readonly / "pycocoevalcap"
    shutil.copytree(source, package, ignore=shutil.ignore_patterns("*.gz", "__pycache__"))
    for path in [package, *package.rglob("*")]:
        path.chmod(path.stat().st_mode & ~0o222)
    script = tmp_path / "run_ptb_tokenizer.py"
    script.write_text(_TOKENIZE_SCRIPT)
    env = {**os.environ, "PYTHONPATH": f"{readonly}{os.pathsep}{PROJECT_ROOT}", "PYTHONDONTWRITEBYTECODE": "1"}
    command = [sys.executable, str(script)]
    if os.geteuid() == 0:  # root ignores permission bits: mount the copy read-only in a private namespace
        if shutil.which("unshare") is None:
            pytest.skip("running as root without `unshare`: cannot make a folder read-only")
        command = ["unshare", "-m", "sh", "-c",
                   f'mount --bind "{readonly}" "{readonly}" && mount -o remount,bind,ro "{readonly}" '
                   f'&& exec "{sys.executable}" "{script}"']
    completed = subprocess.run(command, capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120)
    if completed.returncode != 0 and "mount" in completed.stderr:
        pytest.skip(f"cannot mount read-only here: {completed.stderr.strip()[-200:]}")
    assert completed.returncode == 0, completed.stderr
    report = json.loads(completed.stdout.strip().splitlines()[-1])
    assert Path(report["package"]).resolve().is_relative_to(readonly.resolve())
    assert report["toolkit"] in {"PermissionError", "OSError"}  # the toolkit's own wrapper fails there
    # Same tokens as the toolkit's wrapper gives in a writable site-packages (its quirks included:
    # -lowerCase turns -LRB- into -lrb-, which the punctuation filter then misses).
    from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer as ToolkitTokenizer

    captions = {1: [{"caption": "A man's bike, parked (outside)."}], 2: [{"caption": "Two DOGS -- playing!"}]}
    expected = {str(k): v for k, v in ToolkitTokenizer().tokenize(captions).items()}
    assert report["ours"] == expected == {"1": ["a man 's bike parked -lrb- outside -rrb-"], "2": ["two dogs playing"]}
    for path in [package, *package.rglob("*")]:  # let pytest clean tmp_path
        path.chmod(path.stat().st_mode | 0o200)


# --- tagging metrics ---------------------------------------------------------------------------


def _average_precision_by_definition(truth: np.ndarray, score: np.ndarray) -> float:
    """AP = sum_n (R_n - R_{n-1}) P_n over distinct thresholds, written as a plain loop."""
    total, previous_recall = 0.0, 0.0
    for threshold in sorted(set(score.tolist()), reverse=True):
        predicted = score >= threshold
        precision = (predicted & truth).sum() / predicted.sum()
        recall = (predicted & truth).sum() / truth.sum()
        total += (recall - previous_recall) * precision
        previous_recall = recall
    return total


def test_average_precision_matches_hand_computed_cases():
    # scikit-learn's documented example: average_precision_score -> 0.8333...
    ap = metrics.average_precision(np.array([[0], [0], [1], [1]]), np.array([[0.1], [0.4], [0.35], [0.8]]))
    assert ap[0] == pytest.approx(5 / 6)
    # Ties enter together: thresholds 0.9 (P=1/2, R=1/2), 0.5 (P=2/3, R=1), 0.1 (R unchanged).
    ap = metrics.average_precision(np.array([[1], [0], [1], [0]]), np.array([[0.9], [0.9], [0.5], [0.1]]))
    assert ap[0] == pytest.approx(0.5 * 0.5 + 0.5 * 2 / 3)


def test_average_precision_equals_its_definition_on_random_data_with_ties():
    rng = np.random.default_rng(0)
    for _ in range(20):
        truth = rng.random((40, 7)) < 0.3
        truth[0] = True  # every class has a positive
        score = rng.integers(0, 6, size=(40, 7)) / 5.0  # few distinct values: many ties
        ours = metrics.average_precision(truth.astype(int), score)
        expected = [_average_precision_by_definition(truth[:, c], score[:, c]) for c in range(7)]
        assert ours == pytest.approx(expected, abs=1e-12)
        # AP depends only on the ranking: a strictly increasing transform leaves it unchanged.
        assert metrics.average_precision(truth.astype(int), np.exp(3 * score) - 1) == pytest.approx(ours)


def test_mean_average_precision_skips_classes_without_positives():
    truth = np.array([[1, 0, 0], [0, 1, 0], [1, 0, 0]])
    perfect = np.array([[0.9, 0.1, 0.5], [0.2, 0.8, 0.5], [0.7, 0.3, 0.5]])
    per_class = metrics.average_precision(truth, perfect)
    assert per_class[:2] == pytest.approx([1.0, 1.0]) and np.isnan(per_class[2])
    assert metrics.mean_average_precision(truth, perfect) == 1.0
    worst = 1.0 - perfect  # positives ranked last
    assert metrics.mean_average_precision(truth, worst) == pytest.approx(((1 / 2 + 2 / 3) / 2 + 1 / 3) / 2)
    with pytest.raises(ValueError, match="no class has a positive"):
        metrics.mean_average_precision(np.zeros((2, 2)), np.ones((2, 2)))


def test_f1_and_precision_at_k_match_hand_computed_values():
    truth = np.array([[1, 0, 1], [0, 1, 0]])
    score = np.array([[0.9, 0.6, 0.2], [0.1, 0.7, 0.4]])
    # decisions at 0.5: class 0 TP; class 1 TP + FP; class 2 FN -> per-class F1 1, 2/3, 0
    f1 = metrics.f1_scores(truth, score, threshold=0.5)
    assert f1["micro_f1"] == pytest.approx(2 * 2 / (2 * 2 + 1 + 1))
    assert f1["macro_f1"] == pytest.approx((1 + 2 / 3 + 0) / 3)
    assert f1["micro_precision"] == pytest.approx(2 / 3) and f1["micro_recall"] == pytest.approx(2 / 3)
    assert metrics.precision_at_k(truth, score, 1) == 1.0
    assert metrics.precision_at_k(truth, score, 2) == 0.5
    assert metrics.f1_scores(truth, score, threshold=0.95)["micro_f1"] == 0.0  # nothing predicted
    summary = metrics.tagging_metrics(truth, score, ks=(1, 2, 5))
    assert summary["P@1"] == 1.0 and summary["P@2"] == 0.5 and "P@5" not in summary


def test_tagging_metrics_reject_malformed_inputs():
    with pytest.raises(ValueError, match="same shape"):
        metrics.mean_average_precision(np.ones((3, 2)), np.ones((3, 3)))
    with pytest.raises(ValueError, match="only 0 and 1"):
        metrics.f1_scores(np.full((2, 2), 2), np.ones((2, 2)))
    with pytest.raises(ValueError, match="NaN"):
        metrics.average_precision(np.ones((2, 2)), np.full((2, 2), np.nan))
    with pytest.raises(ValueError, match="k=4"):
        metrics.precision_at_k(np.ones((2, 3)), np.ones((2, 3)), 4)


# --- French and German captions ----------------------------------------------------------------

def _multi30k_annotations(shared_data: Path, lang: str, count: int, split: str = "val") -> tuple[dict, list[str]]:
    """COCO-format annotations of the first `count` Multi30K photos of `split`, one reference each."""
    from helpers.data import multi30k

    records = multi30k.load_multi30k_captions(shared_data / "multi30k-task1", split, lang)[:count]
    annotations = {"images": [{"id": r.image_id, "file_name": r.file_name} for r in records],
                   "annotations": [{"id": n, "image_id": r.image_id, "caption": r.captions[0]}
                                   for n, r in enumerate(records, start=1)]}
    return annotations, [r.captions[0] for r in records]


def test_language_tokenizer_splits_elision_keeps_accents_where_ptb_does_not():
    captions = {1: [{"caption": "L'homme est à côté, aujourd’hui."}], 2: [{"caption": "l' homme est a cote"}]}
    assert metrics.LanguageTokenizer("fr").tokenize(captions) == {
        1: ["l' homme est à côté aujourd'hui"], 2: ["l' homme est a cote"]}
    assert metrics.LanguageTokenizer("de").tokenize({7: [{"caption": "Ein Mann isst Essen."}]}) == {
        7: ["ein mann isst essen"]}     # lowercased for scoring, as PTB's -lowerCase
    ptb = metrics.PTBTokenizer().tokenize(captions)   # English rules: "l'homme" stays whole, "aujourd hui"
    assert ptb[1] == ["l'homme est à côté aujourd hui"]
    with pytest.raises(ValueError, match="not supported"):
        metrics.LanguageTokenizer("it")


def test_identical_french_and_german_captions_score_like_identical_english(shared_data):
    scores = {}
    for lang in ("en", "fr", "de"):
        annotations, sentences = _multi30k_annotations(shared_data, lang, 20)
        # the candidate is the reference written otherwise: case, elision apart, no final period
        candidates = [s.upper().rstrip(".").replace("'", "' ") if lang == "fr" else s for s in sentences]
        results = [{"image_id": image["id"], "caption": c} for image, c in zip(annotations["images"], candidates)]
        scores[lang] = metrics.evaluate_captions(annotations, results, spice=None, language=lang)
    for lang in ("fr", "de"):
        evaluation = scores[lang]
        assert evaluation.num_images == 20
        assert evaluation.scores["BLEU-4"] == pytest.approx(1.0) and evaluation.scores["ROUGE-L"] == pytest.approx(1.0)
        assert evaluation.scores["CIDEr"] == pytest.approx(scores["en"].scores["CIDEr"]) == pytest.approx(10.0)
        assert "English only" in evaluation.unavailable["SPICE"]
        available, reason = metrics.meteor_status(lang)
        if available:
            assert evaluation.scores["METEOR"] == pytest.approx(1.0, abs=0.01)
        else:
            assert "METEOR" not in evaluation.scores
            assert evaluation.unavailable["METEOR"] == reason and f"paraphrase-{lang}.gz" in reason
    assert scores["en"].scores["BLEU-4"] == pytest.approx(1.0) and "METEOR" in scores["en"].scores


def test_french_scores_equal_pycocoevalcap_on_language_tokens(shared_data):
    """Imperfect candidates (each the reference of the next photo, or without its accents): our
    scores equal pycocoevalcap's scorers run on `LanguageTokenizer`'s strings, image by image."""
    import unicodedata

    from pycocoevalcap.bleu.bleu import Bleu
    from pycocoevalcap.cider.cider import Cider
    from pycocoevalcap.rouge.rouge import Rouge

    annotations, sentences = _multi30k_annotations(shared_data, "fr", 30)
    ids = [image["id"] for image in annotations["images"]]

    def strip_accents(text):
        return "".join(c for c in unicodedata.normalize("NFD", text) if unicodedata.category(c) != "Mn")

    candidates = [sentences[(n + 1) % 30] if n % 2 else strip_accents(sentences[n]) for n in range(30)]
    results = [{"image_id": i, "caption": c} for i, c in zip(ids, candidates)]
    ours = metrics.evaluate_captions(annotations, results, spice=False, language="fra")

    tokenizer = metrics.LanguageTokenizer("fr")
    gts = tokenizer.tokenize({i: [{"caption": s}] for i, s in zip(ids, sentences)})
    res = tokenizer.tokenize({i: [{"caption": c}] for i, c in zip(ids, candidates)})
    expected = {}
    bleu, bleu_per_image = Bleu(4).compute_score(gts, res, verbose=0)
    expected.update({f"BLEU-{n + 1}": value for n, value in enumerate(bleu)})
    expected["ROUGE-L"], _ = Rouge().compute_score(gts, res)
    expected["CIDEr"], _ = Cider().compute_score(gts, res)
    assert ours.scores == pytest.approx(expected, abs=1e-12)
    assert [ours.per_image[i]["BLEU-1"] for i in gts] == pytest.approx(bleu_per_image[0], abs=1e-12)
    # an accent is a different word: the first sentence without its accents loses those words
    assert sentences[0] == "Un groupe d'hommes chargent du coton dans un camion"
    first_with_accent = next(n for n in range(0, 30, 2) if strip_accents(sentences[n]) != sentences[n])
    assert ours.per_image[ids[first_with_accent]]["BLEU-1"] < 1.0
    assert sentences[first_with_accent] == "Un garçon avec un casque est assis sur les épaules d'une femme."
    assert ours.per_image[ids[first_with_accent]]["BLEU-1"] == pytest.approx(11 / 13)   # garcon, epaules: 2 of 13
    assert {name: round(ours.scores[name], 4) for name in ("BLEU-1", "BLEU-4", "ROUGE-L", "CIDEr")} == {
        "BLEU-1": 0.4768, "BLEU-4": 0.3515, "ROUGE-L": 0.5274, "CIDEr": 3.7629}


def test_meteor_runs_the_jar_with_the_language_and_fails_without_its_paraphrase_table():
    scorer = metrics._meteor_scorer("fr")
    try:
        assert scorer.meteor_cmd[-3:] == ["-l", "fr", "-norm"]
        available, reason = metrics.meteor_status("fr")
        if not available:   # the jar itself says what meteor_status says
            _, stderr = scorer.meteor_p.communicate(timeout=120)
            assert scorer.meteor_p.returncode != 0 and b"paraphrase-fr.gz" in stderr
            assert "paraphrase-fr.gz" in reason and "pycocoevalcap does not ship" in reason
    finally:
        scorer.meteor_p.kill()
        scorer.meteor_p.wait()
        scorer.__class__ = metrics._ClosedMeteor
    assert metrics.meteor_status("en") == (True, "")
