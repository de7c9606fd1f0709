"""Datasets and photos: what the project reads from disk, before any model.

- `coco`       COCO captions and instances (pycocotools), Flickr8k/30k caption files
- `caption_text`  caption files without photos (COCO JSON, Flickr, Multi30K), the photos never trained on
- `multi30k`   Multi30K task 1: line-parallel English, French, German and Czech descriptions
- `vgenome`    Visual Genome JSON, streamed (plain or zipped)
- `sample`     the embedded, generated sample dataset (COCO and Visual Genome formats)
- `images`     robust photo loading: EXIF orientation, modes, draft JPEG decoding, errors
- `nltk_data`  WordNet, Open Multilingual Wordnet, stopwords and punkt, offline friendly
- `versioned_json`  files with a format name and version, written atomically; `IndexedNames`

May import: `helpers.config`.
"""
