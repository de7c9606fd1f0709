"""Caption and tag photos: COCO / Visual Genome data, a CNN encoder with a synset
classifier and an LSTM caption decoder, training, inference and MyPhotoShare album tagging.

Modules, in the order the notebooks use them:

- `helpers.nltk_data`  make WordNet, OMW, stopwords and punkt available (offline friendly)
- `helpers.sample`     the embedded, generated sample dataset (COCO + Visual Genome formats)
- `helpers.coco`       COCO captions/instances (pycocotools) and Flickr8k/30k caption files
- `helpers.vgenome`    Visual Genome JSON, streamed (plain or zipped)
- `helpers.vocab`      caption tokenisation and the word `Vocabulary`
- `helpers.synsets`    words -> WordNet synsets, the `SynsetVocabulary`, multilingual keywords
- `helpers.images`     robust photo loading (EXIF, modes, draft decoding)
- `helpers.model`      encoder registry, synset classifier, LSTM / attention decoders, bundles
- `helpers.features`   frozen-encoder feature cache, sharded and resumable
- `helpers.train`      tf.data pipelines, training loop with live curves, checkpoints, resume
- `helpers.inference`  greedy and batched beam search, tag prediction
- `helpers.metrics`    COCO caption metrics (pycocoevalcap) and tagging metrics
- `helpers.album`      MyPhotoShare `album.ini` tagging
- `helpers.widgets`    the ipywidgets album-tagging panel
- `helpers.plots`      every figure the notebooks show

The command line is `python -m helpers --help`.
"""

import os as _os

__version__ = "0.1.0"

# oneDNN's CPU kernels: TensorFlow turns them on by itself only on CPUs with AVX-512, yet they
# train the attention decoder 1.3-2.4x faster on AVX2 CPUs too (README, "Performance"). On unless
# the user chose: `TF_ENABLE_ONEDNN_OPTS=0` turns them off. TensorFlow reads the variable when it
# is first imported, so this takes effect when `helpers` is imported before `tensorflow`.
_os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")
