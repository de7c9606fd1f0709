"""Caption and tag photos: COCO / Visual Genome data, a CNN encoder with a synset
classifier and an LSTM caption decoder, training, prediction and MyPhotoShare album tagging.

The package, one line a layer, top to bottom (each imports only from the lines below it;
`pyproject.toml` states the contract, `tests/test_layers.py` enforces it):

- `helpers.cli`, `demo`, `widgets`, `evaluate`  the command line, `make demo`, the album panel, scoring a run
- `helpers.album`       MyPhotoShare `album.ini`, XMP sidecars, tagging an album
- `helpers.training`    tf.data pipelines, the feature cache, callbacks, the training loop
- `helpers.predict`     beam search, the `Predictor` protocol and predictors, the prediction cache
- `helpers.bundle`      a trained model on disk (config, vocabularies, weights)
- `helpers.model`       the architecture: synset classifier, LSTM and soft-attention caption decoders
- `helpers.pretrained`  CNN encoders, EfficientNet-Lite0 with Google's weights, the weights reader
- `helpers.wordnet`     synset mapping, the synset vocabulary, keywords in 30 languages, hierarchy
- `helpers.text`, `plots`, `metrics`  tokenisation and vocabulary; every figure; caption and tag metrics
- `helpers.data`        COCO, Visual Genome, the embedded sample, photos, NLTK data
- `helpers.config`      `Config` (every training default) and the project's paths

The command line is `python -m helpers --help`.
"""

import os as _os

__version__ = "0.2.0"   # as in pyproject.toml

# oneDNN's CPU kernels: TensorFlow turns them on by itself only on CPUs with AVX-512, yet they
# train the attention decoder 1.3-2.4x faster on AVX2 CPUs too (README, "Performance"). On unless
# the user chose: `TF_ENABLE_ONEDNN_OPTS=0` turns them off. TensorFlow reads the variable when it
# is first imported, so this takes effect when `helpers` is imported before `tensorflow`.
_os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")
