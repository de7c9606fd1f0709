"""Prediction: decoding, the predictors, what they return, and the cache of what they returned.

- `decoding`     greedy and beam search (one compiled `tf.while_loop`) and their reference
- `prediction`   `Prediction`, what every predictor says about one photo
- `predictors`   the `Predictor` protocol and its implementations (trained run, ImageNet hierarchy)
- `photo_cache`  predictions stored per photo, so re-running on an album costs almost nothing

May import: `helpers.bundle`, `helpers.model`, `helpers.pretrained`, `helpers.wordnet`,
`helpers.text`, `helpers.data`, `helpers.config`.
"""
