"""Captions in French and German from concepts: each language's concept decoder against retrieval and English.

    python -m bench.caption_languages      # runs/concepts, runs/concepts-fra, runs/concepts-deu

**Text side**, on Multi30K `test_2016_flickr` (1,000 Flickr30K photos never trained on; one
description per photo and language, line-parallel): the concepts of each photo are taken from its
English sentence (`helpers.wordnet.concepts.image_concepts`, no noise), and

* each language's concept decoder writes a caption from them as `--model pretrained` does (a beam
  of `CONSENSUS_CANDIDATES`, 6, re-ranked by consensus when the run has `consensus.npz`; also
  shown: beam width 3 alone, and the decoder allowed to write words that state a sex, which it
  never does by default: `caption_concept_sets(gendered=True)`), scored against that language's description
  (BLEU-4, CIDEr; French and German tokenised by `helpers.text.languages`, English by the
  toolkit's PTB tokenizer: `evaluate_captions(language=)`);
* (a) **retrieval** in that language: the Multi30K training description whose concepts (from its
  English sentence) best match (Jaccard; ties: fewer concepts, then the first line);
* (b) the **English decoder** (`runs/concepts`, trained on COCO and Flickr8k text) on the same
  concepts, scored against the English description;
* (c) when `runs/concepts-m30k` exists (`--same-data-run`), an English decoder trained on the English
  side of Multi30K alone, the same photos and concepts as the French and German decoders: what the
  same machinery reaches in English on the same data
  (`PHOTO_CAPTIONS_TEXT=<Multi30K folder> python -m helpers train --run concepts-m30k --data-dir
  caption-text --epochs 5`).

**Sex words** (`caption_concept_sets(gendered=)`): the concepts say "person", never a sex, so by
default no caption states one (English rewritten word for word, French and German written again
from a neutral subject: `helpers.text.languages`). Also printed: (d) how often the decoders'
guessed sex (`gendered=True`) agrees with the photo's English description, and (e) CIDEr split by
what that description says: no sex (where a guess cannot score), or one.

Also printed: the CIDEr ratios. Retrieval returns one training photo's description for all three
languages (its concepts come from the English sentence), so "retrieval to English retrieval" is
what the same content, translated, scores in French or German against English: the metric's own
ratio between the languages.

Targets: French and German CIDEr >= 0.8 x the English decoder's, and >= 1.5 x their retrieval.

**Real photos:** the captions of every photo of `examples/album` in the three languages
(`--model pretrained`: detector + hierarchy concepts), printed for reading.

Writes `bench/results/caption_languages.{md,json}`.
"""

from __future__ import annotations

import json
import time

import bench
from bench.real_captions import nearest_captions
from bench.real_photos import RESULTS_DIR

LANGUAGES = ("eng", "fra", "deu")
METRICS = ("BLEU-4", "CIDEr")
# The words by which a caption says a person's sex, per language ("m", "f"): for (d) and (e)
SEX_WORDS = {
    "eng": {"m": frozenset("man men boy boys guy guys gentleman gentlemen he his him".split()),
            "f": frozenset("woman women girl girls lady ladies she her".split())},
    "fra": {"m": frozenset("homme hommes garçon garçons monsieur messieurs gars".split()),
            "f": frozenset("femme femmes fille filles fillette fillettes dame dames".split())},
    "deu": {"m": frozenset("Mann Männer Männern Mannes Junge Jungen Jungs Herr Herren".split()),
            "f": frozenset("Frau Frauen Mädchen Dame Damen".split())},
}


def said_sex(text: str, language: str) -> str:
    """"m", "f", "mf" (both) or "" (neither): the sex a caption's words state."""
    from helpers.text.languages import tokenize

    words = set(tokenize(text, language))
    return "".join(sex for sex in ("m", "f") if words & SEX_WORDS[language][sex])


def _score(references: list[str], captions: list[str], language: str) -> dict:
    from helpers.metrics import evaluate_captions

    annotations = {"images": [{"id": i + 1} for i in range(len(references))],
                   "annotations": [{"id": i + 1, "image_id": i + 1, "caption": text}
                                   for i, text in enumerate(references)]}
    results = [{"image_id": i + 1, "caption": text} for i, text in enumerate(captions)]
    scores = evaluate_captions(annotations, results, spice=False, language=language).scores
    return {metric: scores[metric] for metric in METRICS}


def run(quick: bool = False, run: str = "concepts", beam_width: int = 3, same_data_run: str = "concepts-m30k") -> dict:
    import os

    from helpers.bundle import load_bundle
    from helpers.config import PROJECT_ROOT, resolve_bundle_dir
    from helpers.data.caption_text import MULTI30K_VARIABLE
    from helpers.data.images import is_image_file
    from helpers.data.multi30k import load_multi30k
    from helpers.predict.concept_captions import (
        caption_concept_sets,
        caption_texts,
        concept_lexicon,
        load_consensus,
        main_subjects,
    )
    from helpers.predict.predictors import load_predictor
    from helpers.wordnet.concepts import image_concepts
    from helpers.wordnet.synsets import SynsetMapper

    started = time.perf_counter()
    root = os.environ.get(MULTI30K_VARIABLE)
    if not root:
        raise FileNotFoundError(f"set {MULTI30K_VARIABLE} to a Multi30K task-1 folder (../shared has one)")
    test = load_multi30k(root, "test_2016_flickr", LANGUAGES)
    train = load_multi30k(root, "train", LANGUAGES)
    if quick:
        test = test[:200]
    mapper = SynsetMapper()
    concepts = [image_concepts([item.sentences["eng"]], mapper) for item in test]
    train_concepts = [frozenset(c.synset for c in image_concepts([item.sentences["eng"]], mapper)) for item in train]
    bundles = {language: load_bundle(resolve_bundle_dir(run if language == "eng" else f"{run}-{language}"))
               for language in LANGUAGES}
    try:
        same_data = resolve_bundle_dir(same_data_run) if same_data_run else None
    except FileNotFoundError:
        print(f"(c) left out: no runs/{same_data_run} (see the docstring to train it)")
        same_data = None
    if same_data is not None:
        bundles["eng, Multi30K"] = load_bundle(same_data)
    # retrieval picks one training photo for every language (concepts from its English sentence)
    nearest = nearest_captions(concepts, [(synsets, i) for i, synsets in enumerate(train_concepts)])
    table, captions, guessed, guesses, by_sex = {}, {}, {}, {}, {}
    described = [said_sex(item.sentences["eng"], "eng") for item in test]       # what the photo shows
    subsets = {"the description names no sex": [i for i, sex in enumerate(described) if not sex],
               "it names one": [i for i, sex in enumerate(described) if sex in ("m", "f")]}
    for name, bundle in bundles.items():
        language = bundle.vocabulary.language

        def decode(consensus=None, bundle=bundle, gendered=False):
            # the template rule for main subjects where `--model pretrained` has it: after the
            # subject search, which runs with consensus re-ranking only (English)
            beams = caption_concept_sets(bundle, concepts, beam_width=beam_width, consensus=consensus,
                                         gendered=gendered)
            return [captions[0][0] for captions in
                    caption_texts(bundle.vocabulary, concepts, beams, concept_lexicon(bundle, consensus),
                                  main_subjects(bundle, concepts) if consensus is not None else None)]

        captions[name] = decode(load_consensus(bundle))
        guessed[name] = decode(load_consensus(bundle), gendered=True)
        references = [item.sentences[language] for item in test]
        table[name] = {"decoder": _score(references, captions[name], language),
                       "decoder, beam search only": _score(references, decode(), language),
                       "decoder, sex words allowed": _score(references, guessed[name], language)}
        methods = {"decoder": captions[name], "decoder, sex words allowed": guessed[name]}
        if name in LANGUAGES:
            retrieved = [train[i].sentences[language] for i in nearest]
            table[name]["retrieval"] = _score(references, retrieved, language)
            methods["retrieval"] = retrieved
            guesses[name] = sex_guesses(guessed[name], described, language)
        for subset, rows in subsets.items():
            by_sex.setdefault(subset, {})[name] = {
                method: _score([references[i] for i in rows], [texts[i] for i in rows], language)["CIDEr"]
                for method, texts in methods.items()}
    english = table["eng"]["decoder"]["CIDEr"]
    targets = {}
    for language in ("fra", "deu"):
        for method, suffix in (("decoder", ""), ("decoder, sex words allowed", " (sex words allowed)")):
            cider = table[language][method]["CIDEr"]
            targets[f"{language} CIDEr >= 0.8 x English{suffix}"] = cider >= 0.8 * table["eng"][method]["CIDEr"]
            retrieval = table[language]["retrieval"]["CIDEr"]
            targets[f"{language} CIDEr >= 1.5 x retrieval{suffix}"] = cider >= 1.5 * retrieval
    # what the same content scores in each language: retrieval returns the same training photo's
    # description in all three (the concepts come from the English sentence), line-parallel
    ratios = {language: {"to English decoder": table[language]["decoder"]["CIDEr"] / english,
                         "retrieval to English retrieval": (table[language]["retrieval"]["CIDEr"]
                                                            / table["eng"]["retrieval"]["CIDEr"]),
                         "to retrieval": table[language]["decoder"]["CIDEr"] / table[language]["retrieval"]["CIDEr"]}
              for language in LANGUAGES}
    if "eng, Multi30K" in table:
        ratios["eng, Multi30K"] = {"to retrieval": table["eng, Multi30K"]["decoder"]["CIDEr"]
                                   / table["eng"]["retrieval"]["CIDEr"]}

    album = sorted(path for path in (PROJECT_ROOT / "examples" / "album").iterdir() if is_image_file(path))
    predictor = load_predictor(model="pretrained", concepts=run)
    real = {language: [p.caption for p in predictor.predict(album, lang=language, nb_keywords=3, progress=False)]
            for language in LANGUAGES}
    seconds = time.perf_counter() - started
    lines = [f"Multi30K test_2016_flickr, {len(test)} photos, concepts from the English sentence:", "",
             "| language | method | BLEU-4 | CIDEr |", "|---|---|---|---|"]
    for language, rows in table.items():
        for method, scores in rows.items():
            label = "English decoder (b)" if language == "eng" and method == "decoder" else method
            lines.append(f"| {language} | {label} | {scores['BLEU-4']:.3f} | {scores['CIDEr']:.3f} |")
    lines += ["", "CIDEr ratios:", ""] + [
        f"- {language}: " + ", ".join(f"{name} {value:.2f}" for name, value in rows.items())
        for language, rows in ratios.items()]
    lines += ["", "Targets: " + ", ".join(f"{name}: {'yes' if ok else 'no'}" for name, ok in targets.items()), ""]
    lines += ["(d) The sex the decoders guess when allowed (`gendered=True`), against the English description "
              f"(which names a man in {described.count('m')} photos, a woman in {described.count('f')}, both in "
              f"{described.count('mf')}, neither in {described.count('')}):", "",
              "| language | captions naming one sex | a man | a woman | description agrees | names the other "
              "| names neither or both |", "|---|---|---|---|---|---|---|"]
    lines += [f"| {language} | {g['one sex']} | {g['m']} | {g['f']} | {g['agrees']} | {g['other']} | {g['neither']} |"
              for language, g in guesses.items()]
    lines += ["", "(e) CIDEr by what the photo's English description says:", "",
              "| language | photos | decoder | decoder, sex words allowed | retrieval |", "|---|---|---|---|---|"]
    for subset, rows in by_sex.items():
        for language, scores in rows.items():
            lines.append(f"| {language}, {subset} | {len(subsets[subset])} | {scores['decoder']:.3f} | "
                         f"{scores['decoder, sex words allowed']:.3f} | "
                         + (f"{scores['retrieval']:.3f} |" if "retrieval" in scores else "- |"))
    lines += ["",
              "| photo | English | French | German |", "|---|---|---|---|"]
    lines += [f"| {path.name} | {real['eng'][i]} | {real['fra'][i]} | {real['deu'][i]} |"
              for i, path in enumerate(album)]
    lines += ["", "First test photos:", ""] + [
        f"- {test[i].file_name}: concepts {[c.synset for c in concepts[i]]}; " + "; ".join(
            f"{language}: {captions[language][i]} (ref: {test[i].sentences[language]})" for language in LANGUAGES)
        for i in range(5)]
    text = "\n".join(lines) + f"\n\n({seconds:.0f} s)\n"
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    (RESULTS_DIR / "caption_languages.md").write_text(text, encoding="utf-8")
    print(text)
    results = {"table": table, "ratios": ratios, "targets": targets, "sex guesses": guesses, "CIDEr by sex": by_sex,
               "album": {lang: dict(zip([p.name for p in album], real[lang])) for lang in LANGUAGES},
               "seconds": round(seconds, 1)}
    (RESULTS_DIR / "caption_languages.json").write_text(json.dumps(results, indent=1, ensure_ascii=False) + "\n",
                                                        encoding="utf-8")
    return results


def sex_guesses(captions: list[str], described: list[str], language: str) -> dict:
    """How the sexes `captions` state compare with those the photos' descriptions state."""
    said = [said_sex(caption, language) for caption in captions]
    one = [(s, d) for s, d in zip(said, described) if s in ("m", "f")]
    return {"one sex": len(one), "m": sum(s == "m" for s, _ in one), "f": sum(s == "f" for s, _ in one),
            "agrees": sum(s == d for s, d in one), "other": sum(d in ("m", "f") and s != d for s, d in one),
            "neither": sum(d not in ("m", "f") for _, d in one)}


def main(argv: list[str] | None = None) -> int:
    return bench.command_line(__doc__, run, argv, quick="200 test photos instead of 1,000",
                              options=[bench.option("--run", default="concepts",
                                                    help="English concept-decoder run; others: <run>-fra, <run>-deu"),
                                       bench.option("--beam-width", type=int, default=3, help="beam width (3)"),
                                       bench.option("--same-data-run", default="concepts-m30k",
                                                    help="an English concept decoder trained on Multi30K's "
                                                         "English text alone, shown when it exists")],
                              print_result=False)


if __name__ == "__main__":
    raise SystemExit(main())
