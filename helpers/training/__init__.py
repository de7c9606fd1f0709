"""Training: input pipelines, the feature cache, callbacks and the training loop.

- `pipelines`  tf.data chains: images for the encoder, caption batches from feature shards
- `features`   the frozen encoder's features, cached in shards (once, resumable)
- `callbacks`  live loss curves, sample captions, epoch clock, resumable state
- `concept_data`  caption text -> noisy concept sets (`ConceptCache`) for the concept decoder
- `train`      prepare (vocabularies, features) and train the classifier and decoder, resume

May import: `helpers.predict` (decoding, for sample captions), `helpers.bundle`, `helpers.model`,
`helpers.pretrained`, `helpers.wordnet`, `helpers.text`, `helpers.plots`, `helpers.data`,
`helpers.config`.
"""
