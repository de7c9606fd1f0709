"""Datasets and photos: what the project reads from disk, before any model.

- `coco`       COCO captions and instances (pycocotools), Flickr8k/30k caption files
- `vgenome`    Visual Genome JSON, streamed (plain or zipped)
- `sample`     the embedded, generated sample dataset (COCO and Visual Genome formats)
- `images`     robust photo loading: EXIF orientation, modes, draft JPEG decoding, errors
- `nltk_data`  WordNet, Open Multilingual Wordnet, stopwords and punkt, offline friendly
- `versioned_json`  files with a format name and version, written atomically; `IndexedNames`

May import: `helpers.config`.
"""
