"""Prediction: decoding, the predictors, what they return, and the cache of what they returned.

- `decoding`     greedy and beam search (one compiled `tf.while_loop`) and their reference
- `beam`         the compiled beam search's named state (`BeamState`) and sub-steps
- `batches`      the batch driver every predictor shares (decode in threads, batches, errors)
- `prediction`   `Prediction`, what every predictor says about one photo, and the `Predictor` protocol
- `predictors`   the trained run's `Captioner`, it with a pretrained tagger, `load_predictor`
- `imagenet`     `ImageNetTagger`: EfficientNet-Lite0 and WordNet's hierarchy (no training)
- `fused`        `PretrainedTagger`: the COCO detector fused with `ImageNetTagger` (no training)
- `concept_captions`  `ConceptCaptioner`: the tagger's concepts -> a concept decoder's captions
- `photo_cache`  predictions stored per photo, so re-running on an album costs almost nothing

May import: `helpers.bundle`, `helpers.model`, `helpers.pretrained`, `helpers.wordnet`,
`helpers.text`, `helpers.data`, `helpers.config`.
"""
