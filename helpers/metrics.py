"""Caption metrics (the COCO caption toolkit, pycocoevalcap) and tagging metrics (numpy).

Caption metrics are computed the standard way, exactly as the coco-caption toolkit does
(Chen et al. 2015, "Microsoft COCO Captions: Data Collection and Evaluation Server"):

1. references and candidates are loaded with pycocotools (`COCO` + `COCO.loadRes`);
2. every caption is tokenised by the Stanford PTBTokenizer (`stanford-corenlp-3.4.1.jar`, shipped
   with pycocoevalcap, run with Java) and punctuation tokens are dropped;
3. BLEU-1..4 (Papineni et al. 2002), METEOR 1.5 (Denkowski & Lavie 2014), ROUGE-L (Lin 2004) and
   CIDEr-D as implemented in the toolkit (Vedantam et al. 2015) are computed by pycocoevalcap's own
   scorers; SPICE (Anderson et al. 2016) only when its Stanford CoreNLP 3.6.0 jars are installed
   next to `pycocoevalcap/spice/spice-1.0.jar` (they are a separate ~400 MB download; without them
   SPICE is reported as unavailable, never downloaded).

The only departure from `pycocoevalcap.eval.COCOEvalCap` is where temporary files go: the toolkit
writes them next to its jars in site-packages, which fails when site-packages is read-only; here
they go to the system temporary folder (same jar, same arguments, same output).

French and German captions (`evaluate_captions(..., language="fra" or "deu")`): the PTB tokenizer
is English-only (it keeps "l'homme" whole, so "l'homme" and "l' homme" differ, and cuts
"aujourd'hui" in two), so step 2 is `helpers.text.languages.tokenize` instead (French elision
split off as "l'", accents kept, punctuation dropped), lowercased as PTB's `-lowerCase` does
(German nouns too), tokens joined by single spaces; step 3 is unchanged: the same pycocoevalcap
scorers on those strings. BLEU, ROUGE-L and CIDEr-D are language-independent given tokens.
METEOR 1.5 runs with `-l fr` / `-l de` (its French and German stemmers and function words are in
the jar) only when its paraphrase table `data/paraphrase-fr.gz` / `paraphrase-de.gz` from the
METEOR 1.5 release sits next to pycocoevalcap's `meteor-1.5.jar`: pycocoevalcap ships only
`paraphrase-en.gz`, without which the jar stops ("file not found"); METEOR is then reported
unavailable with that reason (`meteor_status`), as is SPICE, whose scene-graph parser is English.

Tagging metrics take multi-hot ground truth `y_true` {0, 1} `[num_images, num_synsets]` and scores
`y_score` float `[num_images, num_synsets]` (probabilities or any monotone score):
mean average precision (as scikit-learn's `average_precision_score`), micro/macro F1 at a threshold
and precision@k.

Command line: `python -m helpers score --annotations A.json --results R.json [--out metrics.json]`.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import io
import json
import os
import shutil
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from typing import Iterable, Mapping, Sequence

import numpy as np
import sklearn.metrics

from helpers.text import languages

# Metric names as shown in tables and written to JSON, keyed by pycocoevalcap's names.
CAPTION_METRICS = {
    "Bleu_1": "BLEU-1",
    "Bleu_2": "BLEU-2",
    "Bleu_3": "BLEU-3",
    "Bleu_4": "BLEU-4",
    "METEOR": "METEOR",
    "ROUGE_L": "ROUGE-L",
    "CIDEr": "CIDEr",
    "SPICE": "SPICE",
}

JAVA_TIMEOUT_S = 1800  # seconds one Java scorer call may take before it is considered hung


class CaptionMetricsError(RuntimeError):
    """A caption metric could not be computed (Java missing, a jar failed, bad input files)."""


class MetricUnavailable(CaptionMetricsError):
    """A metric was requested explicitly but what it needs is not installed (e.g. SPICE's jars)."""


# ---------------------------------------------------------------------------------------------
# PTB tokenisation (same jar and arguments as pycocoevalcap, temporary file in a writable place)
# ---------------------------------------------------------------------------------------------


def _java() -> str:
    java = shutil.which("java")
    if java is None:
        raise CaptionMetricsError(
            "caption metrics need Java (the PTB tokenizer, METEOR and SPICE are Java programs) but "
            "`java` is not on PATH; install a Java runtime (e.g. `apt-get install default-jre-headless`)"
        )
    return java


class PTBTokenizer:
    """Stanford PTBTokenizer, as `pycocoevalcap.tokenizer.ptbtokenizer.PTBTokenizer` runs it.

    Same jar (`stanford-corenlp-3.4.1.jar` inside pycocoevalcap), same command
    (`java -cp JAR edu.stanford.nlp.process.PTBTokenizer -preserveLines -lowerCase FILE`), same
    punctuation removal; the sentences file is written to the system temporary folder instead of
    next to the jar, so a read-only site-packages works.
    """

    def __init__(self) -> None:
        from pycocoevalcap.tokenizer import ptbtokenizer

        self.jar = Path(ptbtokenizer.__file__).resolve().parent / ptbtokenizer.STANFORD_CORENLP_3_4_1_JAR
        self.punctuations = set(ptbtokenizer.PUNCTUATIONS)
        if not self.jar.is_file():
            raise CaptionMetricsError(f"the PTB tokenizer jar {self.jar} is missing; reinstall pycocoevalcap")

    def tokenize(self, captions_for_image: Mapping[int, Sequence[Mapping]]) -> dict[int, list[str]]:
        """Tokenise captions.

        Args:
            captions_for_image: `{image_id: [{"caption": str, ...}, ...]}` (pycocotools `imgToAnns`).

        Returns:
            `{image_id: [tokenised caption, ...]}`: lower-case tokens joined by single spaces,
            punctuation removed, in input order.

        Raises:
            CaptionMetricsError: Java missing, the tokenizer failed, or it returned too few lines.
        """
        image_ids = [image_id for image_id, anns in captions_for_image.items() for _ in range(len(anns))]
        sentences = "\n".join(
            ann["caption"].replace("\n", " ") for anns in captions_for_image.values() for ann in anns
        )
        with tempfile.TemporaryDirectory(prefix="ptbtokenizer-") as tmp:
            sentences_file = Path(tmp) / "sentences.txt"
            sentences_file.write_bytes(sentences.encode())
            command = [_java(), "-cp", str(self.jar), "edu.stanford.nlp.process.PTBTokenizer",
                       "-preserveLines", "-lowerCase", str(sentences_file)]
            try:
                completed = subprocess.run(command, capture_output=True, timeout=JAVA_TIMEOUT_S, check=False)
            except subprocess.TimeoutExpired as error:
                raise CaptionMetricsError(f"the PTB tokenizer did not finish in {JAVA_TIMEOUT_S} s") from error
        if completed.returncode != 0:
            raise CaptionMetricsError(
                f"the PTB tokenizer failed (exit {completed.returncode}): "
                f"{completed.stderr.decode(errors='replace')[-2000:]}"
            )
        lines = completed.stdout.decode().split("\n")
        if len(lines) < len(image_ids):
            raise CaptionMetricsError(
                f"the PTB tokenizer returned {len(lines)} lines for {len(image_ids)} captions"
            )
        tokenized: dict[int, list[str]] = {}
        for image_id, line in zip(image_ids, lines):
            words = [word for word in line.rstrip().split(" ") if word not in self.punctuations]
            tokenized.setdefault(image_id, []).append(" ".join(words))
        return tokenized


class LanguageTokenizer:
    """French or German caption tokenisation for scoring, with `PTBTokenizer.tokenize`'s interface.

    Each caption becomes the tokens of `helpers.text.languages.tokenize` (punctuation dropped),
    lowercased, joined by single spaces: "L'homme, aujourd'hui." -> "l' homme aujourd'hui".
    """

    def __init__(self, language: str) -> None:
        """Raises: ValueError: for an unsupported language."""
        self.language = languages.language_code(language)

    def tokenize(self, captions_for_image: Mapping[int, Sequence[Mapping]]) -> dict[int, list[str]]:
        """`{image_id: [{"caption": str, ...}, ...]}` -> `{image_id: [tokenised caption, ...]}`."""
        return {image_id: [" ".join(languages.tokenize(ann["caption"], self.language)).lower() for ann in anns]
                for image_id, anns in captions_for_image.items()}


# ---------------------------------------------------------------------------------------------
# METEOR in French and German (only with its paraphrase table present; never downloads)
# ---------------------------------------------------------------------------------------------


def _meteor_dir() -> Path:
    from pycocoevalcap.meteor import meteor as meteor_module

    return Path(meteor_module.__file__).resolve().parent


def meteor_status(language: str = "eng") -> tuple[bool, str]:
    """Whether METEOR 1.5 can score captions of `language` here: `(True, "")` or `(False, reason)`.

    English always can (pycocoevalcap ships its paraphrase table); French and German need
    `data/paraphrase-fr.gz` / `data/paraphrase-de.gz` of the METEOR 1.5 release next to the jar.

    Raises:
        ValueError: for an unsupported language.
    """
    code = languages.language_code(language)
    if code == languages.ENGLISH:
        return True, ""
    suffix = languages.ISO_639_1[code]
    table = _meteor_dir() / "data" / f"paraphrase-{suffix}.gz"
    if not table.is_file():
        return False, (f"METEOR 1.5 in {languages.LANGUAGES[code]} (-l {suffix}) needs its paraphrase table "
                       f"{table}, which pycocoevalcap does not ship; copy data/paraphrase-{suffix}.gz of the "
                       f"METEOR 1.5 release (www.cs.cmu.edu/~alavie/METEOR) there")
    return True, ""


def _meteor_scorer(language: str):
    """pycocoevalcap's `Meteor`, its Java process started with `-l <language>` (English: as is)."""
    from pycocoevalcap.meteor.meteor import Meteor

    code = languages.language_code(language)
    if code == languages.ENGLISH:
        return Meteor()

    class LanguageMeteor(Meteor):
        def __init__(self):   # Meteor.__init__ with the language changed in the same command
            self.meteor_cmd = ["java", "-jar", "-Xmx2G", "meteor-1.5.jar", "-", "-", "-stdio",
                               "-l", languages.ISO_639_1[code], "-norm"]
            self.meteor_p = subprocess.Popen(self.meteor_cmd, cwd=_meteor_dir(), stdin=subprocess.PIPE,
                                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            self.lock = threading.Lock()

    return LanguageMeteor()


# ---------------------------------------------------------------------------------------------
# SPICE (only with its CoreNLP jars present; never downloads)
# ---------------------------------------------------------------------------------------------


def spice_status() -> tuple[bool, str]:
    """Whether SPICE can run here: `(True, "")` or `(False, reason a person can act on)`."""
    from pycocoevalcap.spice import get_stanford_models

    spice_dir = Path(get_stanford_models.__file__).resolve().parent
    lib = spice_dir / get_stanford_models.SPICELIB
    needed = [lib / f"{get_stanford_models.JAR}.jar", lib / f"{get_stanford_models.JAR}-models.jar"]
    missing = [path.name for path in needed if not path.is_file()]
    if missing:
        return False, (
            f"SPICE needs Stanford CoreNLP jars {missing} in {lib} (not downloaded automatically); "
            f"run `python -m pycocoevalcap.spice.get_stanford_models` where the network allows"
        )
    if shutil.which("java") is None:
        return False, "SPICE needs Java, which is not on PATH"
    return True, ""


def _spice_score(gts: dict, res: dict) -> tuple[float, list]:
    """SPICE as `pycocoevalcap.spice.spice.Spice.compute_score`, with temp/cache dirs writable."""
    from pycocoevalcap.spice import spice as spice_module

    spice_dir = Path(spice_module.__file__).resolve().parent
    image_ids = sorted(gts)
    input_data = [{"image_id": image_id, "test": res[image_id][0], "refs": gts[image_id]}
                  for image_id in image_ids]
    cache_dir = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "helpers-spice"
    cache_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="spice-") as tmp:
        in_file, out_file = Path(tmp) / "input.json", Path(tmp) / "output.json"
        in_file.write_text(json.dumps(input_data, indent=2))
        command = [_java(), "-jar", "-Xmx8G", spice_module.SPICE_JAR, str(in_file), "-cache", str(cache_dir),
                   "-out", str(out_file), "-subset", "-silent"]
        completed = subprocess.run(command, cwd=spice_dir, capture_output=True, timeout=JAVA_TIMEOUT_S)
        if completed.returncode != 0:
            raise CaptionMetricsError(f"SPICE failed (exit {completed.returncode}): "
                                      f"{completed.stderr.decode(errors='replace')[-2000:]}")
        results = json.loads(out_file.read_text())

    def to_float(value):
        try:
            return float(value)
        except (TypeError, ValueError):
            return float("nan")

    by_image = {item["image_id"]: item["scores"] for item in results}
    average = float(np.mean([to_float(by_image[i]["All"]["f"]) for i in image_ids]))
    per_image = [{category: {k: to_float(v) for k, v in values.items()}
                  for category, values in by_image[i].items()} for i in image_ids]
    return average, per_image


# ---------------------------------------------------------------------------------------------
# Caption evaluation
# ---------------------------------------------------------------------------------------------


@dataclasses.dataclass
class CaptionEvaluation:
    """Scores of one results set.

    Attributes:
        scores: corpus-level score per metric, keys from `CAPTION_METRICS` values
            ("BLEU-1" ... "CIDEr", "SPICE" when it ran), floats in [0, 1] (CIDEr in [0, 10]).
        per_image: `{image_id: {metric: score}}` as the toolkit's `imgToEval` (SPICE: a dict).
        unavailable: `{metric: reason}` for metrics that could not run here (e.g. SPICE).
        num_images: images scored (those in the results).
        seconds: wall time of the evaluation.
    """

    scores: dict[str, float]
    per_image: dict[int, dict]
    unavailable: dict[str, str]
    num_images: int
    seconds: float

    def to_dict(self, per_image: bool = False) -> dict:
        out = {"scores": self.scores, "unavailable": self.unavailable,
               "num_images": self.num_images, "seconds": round(self.seconds, 2)}
        if per_image:
            out["per_image"] = {str(k): v for k, v in self.per_image.items()}
        return out

    def table(self, digits: int = 3) -> str:
        """The scores as an aligned two-column text table."""
        return format_table(self.scores, self.unavailable, digits=digits)


def format_table(scores: Mapping[str, float], unavailable: Mapping[str, str] | None = None,
                 digits: int = 3) -> str:
    """An aligned `metric  value` text table; unavailable metrics show `n/a (reason)`."""
    rows = [(name, f"{value:.{digits}f}") for name, value in scores.items()]
    rows += [(name, f"n/a ({reason})") for name, reason in (unavailable or {}).items()]
    width = max((len(name) for name, _ in rows), default=0)
    return "\n".join(f"{name:<{width}}  {value}" for name, value in rows)


def _load_annotations(annotations):
    from pycocotools.coco import COCO

    with contextlib.redirect_stdout(io.StringIO()):
        if isinstance(annotations, (str, Path)):
            path = Path(annotations)
            if not path.is_file():
                raise FileNotFoundError(f"caption annotations file {path} does not exist")
            return COCO(str(path))
        if isinstance(annotations, COCO):
            return annotations
        if isinstance(annotations, Mapping):
            coco = COCO()
            coco.dataset = copy.deepcopy(dict(annotations))
            coco.createIndex()
            return coco
    raise TypeError(f"annotations must be a path, a COCO-format dict or a pycocotools COCO, "
                    f"not {type(annotations).__name__}")


def _load_results(results) -> list[dict]:
    if isinstance(results, (str, Path)):
        path = Path(results)
        if not path.is_file():
            raise FileNotFoundError(f"caption results file {path} does not exist")
        results = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(results, list) or not results:
        raise ValueError('caption results must be a non-empty list of {"image_id": int, "caption": str}')
    seen: set = set()
    for index, result in enumerate(results):
        if not isinstance(result, Mapping) or "image_id" not in result or "caption" not in result:
            raise ValueError(f'caption result {index} is {result!r}; each must be {{"image_id", "caption"}}')
        if result["image_id"] in seen:
            raise ValueError(f"image {result['image_id']} has more than one caption in the results; "
                             f"the COCO metrics score exactly one caption per image")
        seen.add(result["image_id"])
    return [dict(result) for result in results]  # loadRes writes "id" into each: keep the caller's intact


def evaluate_captions(annotations, results, *, spice: bool | None = None, verbose: bool = False,
                      language: str = "eng") -> CaptionEvaluation:
    """Score candidate captions against COCO references, as the coco-caption toolkit does.

    Args:
        annotations: COCO caption annotations: a JSON path, a dict in COCO format (`images`,
            `annotations` with `image_id`/`caption`) or a `pycocotools.coco.COCO`.
        results: candidates, a JSON path or a list `[{"image_id": int, "caption": str}]`, one per image.
            Only the images in the results are scored (as in the toolkit's demo).
        spice: `None` to compute SPICE when its jars are installed (else reported unavailable),
            `True` to require it, `False` to skip it.
        verbose: print each metric as it is computed.
        language: the captions' language, "eng" (default: the toolkit's PTB tokenizer), "fra" or
            "deu" (or "en", "fr", "de"): tokenised by `LanguageTokenizer`; METEOR only when
            `meteor_status(language)` allows, else reported unavailable, like SPICE (English only).

    Returns:
        A `CaptionEvaluation`.

    Raises:
        FileNotFoundError: a path does not exist.
        ValueError: results are malformed, repeat an image, or name images not in the annotations.
        MetricUnavailable: `spice=True` but SPICE cannot run here (or the language is not English).
        CaptionMetricsError: Java is missing or a Java scorer failed.
    """
    from pycocoevalcap.bleu.bleu import Bleu
    from pycocoevalcap.cider.cider import Cider
    from pycocoevalcap.meteor.meteor import Meteor
    from pycocoevalcap.rouge.rouge import Rouge

    start = time.perf_counter()
    code = languages.language_code(language)
    english = code == languages.ENGLISH
    coco = _load_annotations(annotations)
    results = _load_results(results)
    missing = sorted({r["image_id"] for r in results} - set(coco.getImgIds()))
    if missing:
        raise ValueError(f"{len(missing)} result image ids are not in the annotations "
                         f"(first: {missing[:5]}); score against the matching annotations file")
    with contextlib.redirect_stdout(io.StringIO()):
        coco_results = coco.loadRes(results)
    image_ids = coco_results.getImgIds()
    no_references = [i for i in image_ids if not coco.imgToAnns[i]]
    if no_references:
        raise ValueError(f"{len(no_references)} images have no reference captions (first: {no_references[:5]})")

    tokenizer = PTBTokenizer() if english else LanguageTokenizer(code)
    gts = tokenizer.tokenize({i: coco.imgToAnns[i] for i in image_ids})
    res = tokenizer.tokenize({i: coco_results.imgToAnns[i] for i in image_ids})

    unavailable: dict[str, str] = {}
    spice_ok, spice_reason = spice_status() if spice is not False else (False, "")
    if spice is not False and not english:
        spice_ok, spice_reason = False, (f"SPICE parses English only (Stanford CoreNLP's English "
                                         f"scene graphs), not {languages.LANGUAGES[code]}")
    if spice is True and not spice_ok:
        raise MetricUnavailable(spice_reason)
    if spice is None and not spice_ok:
        unavailable["SPICE"] = spice_reason
    meteor_ok, meteor_reason = meteor_status(code)
    if not meteor_ok:
        unavailable["METEOR"] = meteor_reason

    scorers = [(Bleu(4), ["Bleu_1", "Bleu_2", "Bleu_3", "Bleu_4"])]
    if meteor_ok:
        _java()
        scorers.append((_meteor_scorer(code), ["METEOR"]))
    scorers += [(Rouge(), ["ROUGE_L"]), (Cider(), ["CIDEr"])]
    scores: dict[str, float] = {}
    per_image: dict[int, dict] = {i: {} for i in gts}
    for scorer, methods in scorers:
        with contextlib.redirect_stdout(io.StringIO()):
            if isinstance(scorer, Bleu):
                corpus, per = scorer.compute_score(gts, res, verbose=0)
            else:
                corpus, per = scorer.compute_score(gts, res)
        if len(methods) == 1:
            corpus, per = [corpus], [per]
        for value, values, method in zip(corpus, per, methods):
            name = CAPTION_METRICS[method]
            scores[name] = float(value)
            for image_id, image_value in zip(gts.keys(), values):
                per_image[image_id][name] = float(image_value)
            if verbose:
                print(f"{name}: {value:.3f}")
        if isinstance(scorer, Meteor):  # stop its Java process now rather than at garbage collection
            with scorer.lock:
                scorer.meteor_p.stdin.close()
                scorer.meteor_p.kill()
                scorer.meteor_p.wait()
            scorer.__class__ = _ClosedMeteor
    if spice_ok and spice is not False:
        value, values = _spice_score(gts, res)
        scores["SPICE"] = value
        for image_id, image_value in zip(sorted(gts), values):
            per_image[image_id]["SPICE"] = image_value
        if verbose:
            print(f"SPICE: {value:.3f}")
    return CaptionEvaluation(scores=scores, per_image=per_image, unavailable=unavailable,
                             num_images=len(image_ids), seconds=time.perf_counter() - start)


class _ClosedMeteor:
    """What a `Meteor` scorer becomes once its Java process is stopped (its `__del__` is a no-op)."""

    def __del__(self):
        pass


# ---------------------------------------------------------------------------------------------
# Tagging metrics
# ---------------------------------------------------------------------------------------------


def _check_tagging_inputs(y_true, y_score) -> tuple[np.ndarray, np.ndarray]:
    y_true = np.asarray(y_true)
    y_score = np.asarray(y_score, dtype=np.float64)
    if y_true.ndim != 2 or y_true.shape != y_score.shape:
        raise ValueError(f"y_true {y_true.shape} and y_score {y_score.shape} must both be "
                         f"[num_images, num_synsets] with the same shape")
    if not np.isin(y_true, (0, 1)).all():
        raise ValueError("y_true must contain only 0 and 1 (multi-hot synset ground truth)")
    if not np.isfinite(y_score).all():
        raise ValueError("y_score contains NaN or infinite values")
    return y_true.astype(bool), y_score


def average_precision(y_true, y_score) -> np.ndarray:
    """Average precision of each class (column): scikit-learn's `average_precision_score`.

    AP = sum_n (R_n - R_{n-1}) P_n over the distinct score thresholds taken in decreasing order,
    where P_n and R_n are the precision and recall of predicting "positive" for every score
    >= the n-th threshold (tied scores enter together); R_0 = 0. No interpolation.

    Args:
        y_true: {0, 1} `[num_images, num_synsets]`.
        y_score: float `[num_images, num_synsets]`, higher means more likely.

    Returns:
        float64 `[num_synsets]`; NaN for classes without positives (AP is undefined there).

    Raises:
        ValueError: shapes differ or are not 2-D, `y_true` is not binary, scores are not finite.
    """
    y_true, y_score = _check_tagging_inputs(y_true, y_score)
    result = np.full(y_true.shape[1], np.nan)
    scored = np.flatnonzero(y_true.any(axis=0))
    if scored.size:
        result[scored] = sklearn.metrics.average_precision_score(
            y_true[:, scored], y_score[:, scored], average=None)
    return result


def mean_average_precision(y_true, y_score) -> float:
    """mAP: mean of `average_precision` over classes with at least one positive.

    Raises:
        ValueError: as `average_precision`, or no class has a positive.
    """
    per_class = average_precision(y_true, y_score)
    if np.isnan(per_class).all():
        raise ValueError("no class has a positive example; mean average precision is undefined")
    return float(np.nanmean(per_class))


def f1_scores(y_true, y_score, threshold: float = 0.5) -> dict[str, float]:
    """Micro and macro F1 of the decisions `y_score >= threshold`.

    scikit-learn's `precision_recall_fscore_support(average="micro")`: true/false positives and
    false negatives pooled over every (image, synset) pair. Macro F1 averages scikit-learn's
    per-class F1 over the classes with at least one positive (the same classes as
    `mean_average_precision`); a class with positives but no correct prediction counts 0.
    (`f1_score(average="macro")` would also average, as 0, the classes without positives.)

    Returns:
        `{"micro_f1": float, "macro_f1": float, "micro_precision": float, "micro_recall": float}`;
        a ratio with a zero denominator is 0.

    Raises:
        ValueError: as `average_precision`.
    """
    y_true, y_score = _check_tagging_inputs(y_true, y_score)
    predicted = y_score >= threshold
    micro = sklearn.metrics.precision_recall_fscore_support(y_true, predicted, average="micro",
                                                            zero_division=0)
    per_class_f1 = sklearn.metrics.f1_score(y_true, predicted, average=None, zero_division=0)
    has_positive = y_true.any(axis=0)
    macro_f1 = float(per_class_f1[has_positive].mean()) if has_positive.any() else 0.0
    return {"micro_f1": float(micro[2]), "macro_f1": macro_f1,
            "micro_precision": float(micro[0]), "micro_recall": float(micro[1])}


def precision_at_k(y_true, y_score, k: int) -> float:
    """Mean over images of (ground-truth synsets among the k highest-scored) / k.

    Ties are broken by column order (stable sort), so the result is deterministic.

    Raises:
        ValueError: as `average_precision`, or `k` not in [1, num_synsets].
    """
    y_true, y_score = _check_tagging_inputs(y_true, y_score)
    if not 1 <= k <= y_true.shape[1]:
        raise ValueError(f"k={k} must be between 1 and the number of synsets ({y_true.shape[1]})")
    top = np.argsort(-y_score, axis=1, kind="stable")[:, :k]                     # [N, k]
    return float(np.take_along_axis(y_true, top, axis=1).sum(axis=1).mean() / k)


def tagging_metrics(y_true, y_score, threshold: float = 0.5, ks: Iterable[int] = (1, 3, 5)) -> dict[str, float]:
    """All tagging metrics in one dict: `mAP`, `micro_f1`, `macro_f1`, `micro_precision`,
    `micro_recall` (at `threshold`) and `P@k` for each k in `ks` (those <= num_synsets)."""
    y_true_checked, _ = _check_tagging_inputs(y_true, y_score)
    out = {"mAP": mean_average_precision(y_true, y_score)}
    out.update(f1_scores(y_true, y_score, threshold))
    for k in ks:
        if k <= y_true_checked.shape[1]:
            out[f"P@{k}"] = precision_at_k(y_true, y_score, k)
    return out


# ---------------------------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------------------------
