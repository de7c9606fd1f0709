"""WordNet: words to synsets, the synset vocabulary, keywords in 30 languages, the ImageNet hierarchy.

- `senses`             reviewed senses: COCO categories and ambiguous caption words -> synsets
- `synsets`            caption words -> WordNet noun synsets (the synset mapper)
- `synset_vocabulary`  the `SynsetVocabulary` a synset classifier predicts over
- `keywords`           a synset's keyword in any Open Multilingual Wordnet language; `top_k_keywords`
- `hierarchy`          ImageNet-1k classes as WordNet synsets; `specific_keywords` (hedging)
- `concepts`           what the concept decoder reads: concepts from captions and from the tagger,
                       the `ConceptVocabulary`, the tagger's measured noise

May import: `helpers.text`, `helpers.data`, `helpers.config`.
"""
