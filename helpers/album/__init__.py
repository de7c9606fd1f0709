"""MyPhotoShare albums: `album.ini` files, safe writing, scanning, XMP sidecars and tagging.

- `files`    safe reading and atomic writing of user files; `AlbumError`
- `ini`      `album.ini` parsed as MyPhotoShare does, edited with configupdater (nothing else moves)
- `scan`     an album's folders and photos, what is already tagged
- `xmp`      XMP sidecars through ExifTool (`dc:subject`, `lr:hierarchicalSubject`)
- `tagging`  predict, choose keywords and write them: the `tag-album` command's work

May import: `helpers.predict` and everything below it.
"""
