"""Tag a MyPhotoShare album: write `auto_tags` (and optionally captions) into its `album.ini`.

MyPhotoShare (https://gitlab.com/paolobenve/myphotoshare) reads an optional `album.ini` in each
album folder with `configparser.ConfigParser(allow_no_value=True)` (default interpolation): one
section per media file name (case-sensitive, spaces kept), `[album]` for the folder itself and
`[DEFAULT]` for values every section inherits. Keys: title, description (may continue on indented
lines), tags (comma-separated), date, latitude, longitude, country_name, region_name, place_name.

Its companion `mps_autotags` wrote `auto_tags = k1,k2,...` per picture by rewriting the file with
configparser, which destroyed the user's comments and layout. This module writes the same key but
edits the file in place with ConfigUpdater, so everything else stays byte for byte: comments, blank
lines, order, `[DEFAULT]`, multi-line values, unknown keys, the encoding (UTF-8, else cp1252, else
latin-1, written back in the same one) and the line endings (CRLF files stay CRLF).

Decisions (documented here once):

* **Which pictures.** Every picture with a section in album.ini whose file exists, *plus* every
  picture file of the folder without a section (what mps_autotags tagged, and what a user expects:
  the whole album tagged); their new sections are appended at the end of the file in name order.
  Sections for absent files, for non-pictures (videos) and names that leave the folder (`../x.jpg`,
  a symlink resolving outside the album) are reported and left untouched. Hidden files are ignored.
* **What is written.** `auto_tags` for every tagged picture (replaced on every run, so running twice
  with the same model gives the same file). With `merge_into_tags`, keywords the user's `tags`
  (own or inherited from `[DEFAULT]`) lacks are appended to it, compared case-insensitively. With
  `captions`, the best caption becomes `description` only where the picture has none (own or
  inherited). `%` in what we write is escaped as `%%` for configparser's interpolation.
* **Safety.** The new text is parsed back with MyPhotoShare's settings and checked before writing;
  the file is written atomically (temporary file in the same folder, then `os.replace`), after
  `album.ini.bak` has received the previous version (the file as it was before this write; a run
  that changes nothing writes nothing, so the backup keeps the last real change). If album.ini
  changed on disk while the model ran, nothing is written. A read-only folder or file is reported;
  nothing is lost.
"""

from __future__ import annotations

import argparse
import configparser
import dataclasses
import difflib
import os
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from configupdater import ConfigUpdater

from helpers import images
from helpers.keywords import available_languages, select_keywords

ALBUM_INI = "album.ini"
BACKUP_SUFFIX = ".bak"                   # album.ini.bak: the previous version of album.ini
AUTO_TAGS_KEY = "auto_tags"              # the key mps_autotags wrote; MyPhotoShare shows it
RESERVED_SECTIONS = ("DEFAULT", "album")  # not pictures
NEW_FILE_HEADER = (
    "# Additional metadata for the album, pictures and videos (MyPhotoShare album.ini)\n"
    "# See syntax on https://docs.python.org/3/library/configparser.html\n"
    "# auto_tags: keywords written by `python -m helpers tag-album`; edit the other keys freely.\n"
)
ENCODINGS = ("utf-8", "cp1252", "latin-1")  # tried in this order; latin-1 decodes any byte


class AlbumError(RuntimeError):
    """An album.ini that cannot be read or written safely (the message says why and what to do)."""


# --------------------------------------------------------------------------------------------
# Reading album.ini and listing the pictures
# --------------------------------------------------------------------------------------------

@dataclasses.dataclass
class IniFile:
    """An album.ini as text, with what is needed to write it back identically.

    Attributes:
        path: the file (may not exist yet).
        text: decoded content ("" for a new file); line endings as in the file.
        encoding: Python codec name ("utf-8", "utf-8-sig" with a BOM, "cp1252" or "latin-1").
        raw: the bytes read (None for a new file), to detect a concurrent change before writing.
    """

    path: Path
    text: str
    encoding: str
    raw: bytes | None

    @property
    def exists(self) -> bool:
        return self.raw is not None

    @property
    def newline(self) -> str:
        """"\\r\\n" when every line break of the file is CRLF, else "\\n"."""
        crlf = self.text.count("\r\n")
        return "\r\n" if crlf and crlf == self.text.count("\n") else "\n"


def read_ini(path: str | os.PathLike) -> IniFile:
    """Read album.ini, detecting its encoding (UTF-8 with or without BOM, else cp1252, else latin-1).

    A missing file gives an empty `IniFile` (UTF-8, LF) that `write_ini` will create.

    Raises:
        AlbumError: the file exists but cannot be read (permissions, a folder...).
    """
    path = Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return IniFile(path, "", "utf-8", None)
    except OSError as error:
        raise AlbumError(f"cannot read {path}: {error.strerror or error}") from None
    if raw.startswith(b"\xef\xbb\xbf"):
        return IniFile(path, raw.decode("utf-8-sig"), "utf-8-sig", raw)
    for encoding in ENCODINGS:
        try:
            return IniFile(path, raw.decode(encoding), encoding, raw)
        except UnicodeDecodeError:
            continue
    raise AssertionError("latin-1 decodes every byte")  # pragma: no cover


def mps_config() -> configparser.ConfigParser:
    """A parser with MyPhotoShare's settings: `ConfigParser(allow_no_value=True)`."""
    return configparser.ConfigParser(allow_no_value=True)


def parse_like_myphotoshare(text: str, path: Path | str = ALBUM_INI) -> configparser.ConfigParser:
    """Parse album.ini text exactly as MyPhotoShare does.

    Raises:
        AlbumError: MyPhotoShare could not read it either (duplicate section, missing header...).
    """
    config = mps_config()
    try:
        config.read_string(text, source=str(path))
    except configparser.Error as error:
        raise AlbumError(f"{path} is not valid for MyPhotoShare: {error}. Fix it by hand first "
                         "(nothing was changed).") from None
    return config


def _updater(text: str, path: Path | str) -> ConfigUpdater:
    updater = ConfigUpdater(allow_no_value=True)
    try:
        updater.read_string(text, source=str(path))
    except Exception as error:  # configupdater raises configparser errors and its own
        raise AlbumError(f"{path}: cannot edit it in place ({error}); nothing was changed") from None
    if str(updater) != text:  # ConfigUpdater must reproduce the file exactly, or we do not edit
        raise AlbumError(f"{path}: ConfigUpdater does not reproduce this file byte for byte; "
                         "nothing was changed (please report the file's layout)")
    return updater


@dataclasses.dataclass(frozen=True)
class Skipped:
    """A picture (or album.ini section) not tagged, and why."""

    name: str
    reason: str
    path: Path | None = None


@dataclasses.dataclass
class AlbumScan:
    """The pictures of one album folder.

    Attributes:
        album_dir: the folder.
        ini: its album.ini (read; maybe not existing yet).
        pictures: name -> file, in album.ini section order, then the folder's other pictures.
        new_sections: names among `pictures` that have no section yet.
        skipped: sections or files not tagged, with the reason.
        error: why this album cannot be tagged at all (invalid album.ini...), else None.
    """

    album_dir: Path
    ini: IniFile
    pictures: dict[str, Path]
    new_sections: list[str]
    skipped: list[Skipped]
    error: str | None = None


def _inside(path: Path, root: Path) -> bool:
    try:
        path.resolve().relative_to(root)
        return True
    except (ValueError, OSError, RuntimeError):
        return False


def _check_picture(name: str, album_dir: Path, root: Path) -> tuple[Path | None, str | None]:
    """(file, None) when `name` is a picture of `album_dir` that we may read, else (None, reason)."""
    if not name or name in (".", "..") or any(character in name for character in "/\\\0\r\n"):
        return None, "section name is not a file of this folder (refused: outside the album)"
    path = album_dir / name
    if not os.path.lexists(path):
        lower = name.casefold()
        near = [entry for entry in os.listdir(album_dir) if entry.casefold() == lower]
        hint = f" (did you mean [{near[0]}]? names are case-sensitive)" if near else ""
        return None, f"no such file in the folder{hint}; section kept as is"
    if path.is_symlink() and not _inside(path, root):
        return None, "symbolic link to a file outside the album (refused)"
    if path.is_dir():
        return None, "is a folder (tagged with its own album.ini when --recursive)"
    if not images.is_image_file(path):
        return None, "not a picture (video or other media): not tagged"
    return path, None


def scan_album(
    album_dir: str | os.PathLike,
    ini_path: str | os.PathLike | None = None,
    root: str | os.PathLike | None = None,
) -> AlbumScan:
    """List the pictures to tag in one album folder (see the module docstring for the rules).

    Args:
        album_dir: the album folder.
        ini_path: its album.ini (default `album_dir/album.ini`).
        root: the top of the album tree (default `album_dir`); nothing outside it is read.

    Returns:
        `AlbumScan`; problems are in `.skipped` and `.error`, never raised.
    """
    album_dir = Path(album_dir).resolve()
    root = Path(root).resolve() if root is not None else album_dir
    ini_path = Path(ini_path) if ini_path is not None else album_dir / ALBUM_INI
    if not _inside(ini_path.parent, root) or ini_path.parent.resolve() != album_dir:
        return AlbumScan(album_dir, IniFile(ini_path, "", "utf-8", None), {}, [], [],
                         f"{ini_path} is not in the album folder {album_dir} (refused)")
    if ini_path.is_symlink():
        if not _inside(ini_path, root):
            return AlbumScan(album_dir, IniFile(ini_path, "", "utf-8", None), {}, [], [],
                             f"{ini_path} is a symbolic link to outside the album (refused)")
        ini_path = ini_path.resolve()  # edit the file the link points to; keep the link
    try:
        ini = read_ini(ini_path)
        sections = parse_like_myphotoshare(ini.text, ini_path).sections() if ini.exists else []
    except AlbumError as error:
        return AlbumScan(album_dir, IniFile(ini_path, "", "utf-8", None), {}, [], [], str(error))
    pictures: dict[str, Path] = {}
    skipped: list[Skipped] = []
    for name in sections:
        if name in RESERVED_SECTIONS:
            continue
        path, reason = _check_picture(name, album_dir, root)
        if path is None:
            skipped.append(Skipped(name, reason, album_dir / name if "/" not in name else None))
        else:
            pictures[name] = path
    new_sections = []
    try:
        entries = sorted(os.listdir(album_dir), key=lambda entry: (entry.casefold(), entry))
    except OSError as error:
        return AlbumScan(album_dir, ini, pictures, [], skipped,
                         f"cannot list {album_dir}: {error.strerror or error}")
    for name in entries:
        if name in pictures or name in sections or not images.is_image_file(name):
            continue
        path, reason = _check_picture(name, album_dir, root)
        if path is None:
            skipped.append(Skipped(name, reason, album_dir / name))
            continue
        try:
            name.encode(ini.encoding)
        except UnicodeEncodeError:
            skipped.append(Skipped(name, f"file name cannot be written in album.ini's encoding "
                                         f"({ini.encoding}); rename the file or convert album.ini "
                                         "to UTF-8", path))
            continue
        pictures[name] = path
        new_sections.append(name)
    return AlbumScan(album_dir, ini, pictures, new_sections, skipped)


def find_album_dirs(root: str | os.PathLike, recursive: bool = False) -> list[Path]:
    """Album folders under `root`: itself, and with `recursive` every sub-folder (hidden folders
    and symbolic links to folders are not followed) holding pictures or an album.ini."""
    root = Path(root).resolve()
    if not recursive:
        return [root]
    found = []
    for folder, subfolders, files in os.walk(root, followlinks=False):
        subfolders[:] = sorted(name for name in subfolders if not name.startswith("."))
        if ALBUM_INI in files or any(images.is_image_file(name) for name in files):
            found.append(Path(folder))
    return found


# --------------------------------------------------------------------------------------------
# Keywords from predictions
# --------------------------------------------------------------------------------------------

def caption_to_description(caption: str) -> str:
    """"a dog on a sofa" -> "A dog on a sofa." (one line)."""
    text = " ".join(caption.split())
    if not text:
        return ""
    text = text[0].upper() + text[1:]
    return text if text[-1] in ".!?" else text + "."


# --------------------------------------------------------------------------------------------
# Editing album.ini text
# --------------------------------------------------------------------------------------------

def escape_value(text: str) -> str:
    """Escape `%` for configparser's BasicInterpolation (`100%` -> `100%%`)."""
    return text.replace("%", "%%")


def _unescape(text: str) -> str:
    return text.replace("%%", "%")


def _split_tags(raw: str) -> list[str]:
    return [item.strip() for item in raw.replace("\n", ",").split(",") if item.strip()]


def _effective_raw(section, defaults, key: str) -> str | None:
    """Raw (uninterpolated) value of `key` for a section: its own, else [DEFAULT]'s, else None."""
    if section is not None and key in section:
        return section[key].value
    if defaults is not None and key in defaults:
        return defaults[key].value
    return None


def _merged_tags(raw: str | None, keywords: Sequence[str]) -> str | None:
    """`raw` tags plus the keywords it lacks (case-insensitive), or None when nothing is new."""
    raw = raw or ""
    seen = {_unescape(item).casefold() for item in _split_tags(raw)}
    additions = []
    for keyword in keywords:
        if keyword.casefold() not in seen:
            seen.add(keyword.casefold())
            additions.append(escape_value(keyword))
    if not additions:
        return None
    separator = "," if ("," in raw and ", " not in raw) else ", "
    if not raw.strip():
        return separator.join(additions)
    return raw.rstrip().rstrip(",") + separator + separator.join(additions)


def _set_option(section, key: str, value: str) -> None:
    """Set `key` in a ConfigUpdater section: replace the value where it is, or add the option
    after the section's last option (before the comments and blank lines that introduce the next
    section), or right after the header of an empty section."""
    if key in section:
        option = section[key]
        if option.value == value:
            return
        if "\n" in value:
            first, *rest = value.split("\n")
            option.set_values([first, *rest], indent="  ")
        else:
            option.value = value
        return
    options = list(section.iter_options())
    if options:
        options[-1].add_after.option(key, value)
    else:
        section.insert_at(0).option(key, value)


def update_ini_text(
    text: str,
    keywords: Mapping[str, Sequence[str]],
    descriptions: Mapping[str, str] | None = None,
    merge_into_tags: bool = False,
    path: Path | str = ALBUM_INI,
) -> str:
    """Return album.ini text with `auto_tags` (and optional tags/descriptions) set, all else kept.

    Args:
        text: current album.ini content ("" for a new file: a comment header is written).
        keywords: picture name (section) -> keywords to write as `auto_tags` (unescaped text).
            Names without a section get one appended at the end, in the given order.
        descriptions: picture name -> description, written only where the picture has no
            description (own or from [DEFAULT]) or an empty one.
        merge_into_tags: also append to each picture's `tags` the keywords it lacks.
        path: for messages.

    Returns:
        The new text: unchanged bytes except the lines of the options set; new lines use the
        file's line ending (CRLF when every line break of the file is CRLF).

    Raises:
        AlbumError: the text cannot be parsed or edited safely.
    """
    descriptions = descriptions or {}
    crlf = text.count("\r\n")
    newline = "\r\n" if crlf and crlf == text.count("\n") else "\n"
    updater = _updater(text, path)
    defaults = updater["DEFAULT"] if updater.has_section("DEFAULT") else None
    appended: list[str] = []
    for name, words in keywords.items():
        words = list(words)
        auto_tags = ",".join(escape_value(word) for word in words)
        section = updater[name] if updater.has_section(name) else None
        changes: list[tuple[str, str]] = [(AUTO_TAGS_KEY, auto_tags)]
        if merge_into_tags:
            merged = _merged_tags(_effective_raw(section, defaults, "tags"), words)
            if merged is not None:
                changes.append(("tags", merged))
        description = descriptions.get(name)
        if description:
            current = _effective_raw(section, defaults, "description")
            if current is None or not current.strip():
                changes.append(("description", escape_value(description)))
        if section is None:
            appended.append(f"[{name}]" + newline
                            + "".join(f"{key} = {value}{newline}" for key, value in changes))
            continue
        for key, value in changes:
            _set_option(section, key, value)
    new_text = str(updater)
    if newline == "\r\n":  # ConfigUpdater writes "\n" for the lines it adds
        new_text = new_text.replace("\r\n", "\n").replace("\n", "\r\n")
    if not text:
        new_text = NEW_FILE_HEADER.replace("\n", newline) + new_text
    if appended:
        if new_text and not new_text.endswith("\n"):
            new_text += newline
        new_text += "".join(newline + block for block in appended)
    return new_text


def check_written(text: str, keywords: Mapping[str, Sequence[str]], path: Path | str) -> None:
    """Read `text` back with MyPhotoShare's parser and check every `auto_tags`.

    Raises:
        AlbumError: it does not parse, or a value reads back differently.
    """
    config = parse_like_myphotoshare(text, path)
    for name, words in keywords.items():
        expected = ",".join(words)
        try:
            found = config.get(name, AUTO_TAGS_KEY)
        except configparser.Error as error:
            raise AlbumError(f"{path}: [{name}] auto_tags does not read back ({error}); "
                             "nothing was written") from None
        if found != expected:
            raise AlbumError(f"{path}: [{name}] auto_tags reads back as {found!r}, expected "
                             f"{expected!r}; nothing was written")


def unified_diff(old: str, new: str, path: Path | str = ALBUM_INI) -> str:
    """`difflib` unified diff of two album.ini texts ("" when equal)."""
    name = str(path)
    return "".join(difflib.unified_diff(
        old.splitlines(keepends=True), new.splitlines(keepends=True),
        fromfile=f"{name} (now)", tofile=f"{name} (tagged)"))


# --------------------------------------------------------------------------------------------
# Writing
# --------------------------------------------------------------------------------------------

def write_ini(ini: IniFile, text: str) -> Path | None:
    """Write `text` to `ini.path` atomically in `ini.encoding`, keeping `album.ini.bak`.

    The previous file is first copied to `album.ini.bak` (atomically too); the new content goes
    to a temporary file in the same folder which then replaces album.ini (`os.replace`), so a
    crash leaves either the old or the new file, never half of one. File permissions are kept.

    Returns:
        The backup path, or None when album.ini did not exist.

    Raises:
        AlbumError: read-only folder or file, a character the file's encoding cannot hold, or
            album.ini changed on disk since it was read. Nothing is changed then.
    """
    path = ini.path
    try:
        data = text.encode(ini.encoding)
    except UnicodeEncodeError as error:
        bad = text[error.start:error.end]
        raise AlbumError(
            f"{path} is encoded in {ini.encoding}, which cannot hold {bad!r}; nothing was "
            "written. Convert it to UTF-8 (e.g. `iconv -f latin1 -t utf-8`) or choose another "
            "language.") from None
    if ini.exists and _read_only(path):
        raise AlbumError(f"{path} is read-only; nothing was written (make it writable to tag)")
    if _read_only(path.parent):
        raise AlbumError(f"the album folder {path.parent} is read-only; nothing was written "
                         "(make it writable, or preview with update=False / --no-update)")
    current = path.read_bytes() if path.exists() else None
    if current != ini.raw:
        raise AlbumError(f"{path} changed on disk while the photos were tagged; nothing was "
                         "written: run again")
    mode = (os.stat(path).st_mode & 0o7777) if ini.exists else None
    backup = None
    if ini.exists:
        backup = path.with_name(path.name + BACKUP_SUFFIX)
        _atomic_write(backup, ini.raw, mode)
    _atomic_write(path, data, mode)
    return backup


def _read_only(path: Path) -> bool:
    """True when we may not write `path`: no write permission, a read-only file system, or no
    write bit at all (a user's "do not touch" mark, respected even when running as root)."""
    try:
        no_write_bits = not (os.stat(path).st_mode & 0o222)
    except OSError:
        return True
    return no_write_bits or not os.access(path, os.W_OK)


def _atomic_write(path: Path, data: bytes, mode: int | None) -> None:
    try:
        handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as error:
        raise AlbumError(f"cannot write in {path.parent} ({error.strerror or error}); nothing "
                         "was changed") from None
    try:
        with os.fdopen(handle, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        if mode is None:
            umask = os.umask(0)
            os.umask(umask)
            mode = 0o666 & ~umask
        os.chmod(temporary, mode)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


# --------------------------------------------------------------------------------------------
# One album: plan (what would change) and apply
# --------------------------------------------------------------------------------------------

@dataclasses.dataclass
class AlbumResult:
    """What tagging one album folder did (or would do).

    Attributes:
        album_dir, ini_path: the folder and its album.ini.
        keywords: picture name -> keywords written as auto_tags (`[]`: none above `min_proba`).
        descriptions: picture name -> caption written as description.
        skipped: pictures and sections not tagged, with the reason.
        new_text: album.ini after tagging (None when the album could not be planned).
        diff: unified diff of album.ini ("" when nothing changes).
        written: album.ini was written by this call.
        backup_path: album.ini.bak when written over an existing file.
        error: why nothing could be done for this album, else None.
    """

    album_dir: Path
    ini_path: Path
    keywords: dict[str, list[str]] = dataclasses.field(default_factory=dict)
    descriptions: dict[str, str] = dataclasses.field(default_factory=dict)
    skipped: list[Skipped] = dataclasses.field(default_factory=list)
    new_text: str | None = None
    diff: str = ""
    written: bool = False
    backup_path: Path | None = None
    error: str | None = None
    _ini: IniFile | None = dataclasses.field(default=None, repr=False)

    @property
    def changed(self) -> bool:
        return bool(self.diff)

    @property
    def done(self) -> bool:
        """Something useful happened: pictures tagged and the file written or already current."""
        return self.error is None and bool(self.keywords) and (self.written or not self.changed)


def plan_album(
    scan: AlbumScan,
    predictions: Mapping[str, object],
    nb_keywords: int = 5,
    min_proba: float = 0.0,
    lang: str = "eng",
    captions: bool = False,
    merge_into_tags: bool = False,
    translate: Callable[[str, str], str | None] | None = None,
) -> AlbumResult:
    """Compute the new album.ini of one album from predictions, without writing anything.

    Cheap (no model): the widget calls it on every slider move.

    Args:
        scan: from `scan_album`.
        predictions: picture name -> `helpers.prediction.Prediction` (uses `.error`,
            `.synset_probabilities`, `.captions`); a missing name is reported as not predicted.
        nb_keywords, min_proba, lang, translate: as `select_keywords`.
        captions: write the best caption as description where the picture has none.
        merge_into_tags: as `update_ini_text`.
    """
    result = AlbumResult(scan.album_dir, scan.ini.path, skipped=list(scan.skipped),
                         error=scan.error, _ini=scan.ini)
    if scan.error:
        return result
    for name in scan.pictures:
        prediction = predictions.get(name)
        if prediction is None:
            result.skipped.append(Skipped(name, "no prediction", scan.pictures[name]))
            continue
        if getattr(prediction, "error", None):
            result.skipped.append(Skipped(name, prediction.error, scan.pictures[name]))
            continue
        chosen = select_keywords(prediction.synset_probabilities, nb_keywords, min_proba, lang,
                                 translate)
        result.keywords[name] = [word for _, word, _ in chosen]
        if captions and prediction.captions:
            result.descriptions[name] = caption_to_description(prediction.captions[0][0])
    if not result.keywords:
        result.new_text = scan.ini.text
        return result
    try:
        new_text = update_ini_text(scan.ini.text, result.keywords, result.descriptions,
                                   merge_into_tags, scan.ini.path)
        check_written(new_text, result.keywords, scan.ini.path)
    except AlbumError as error:
        result.error = str(error)
        return result
    result.new_text = new_text
    result.diff = unified_diff(scan.ini.text, new_text, scan.ini.path)
    return result


def apply_plan(result: AlbumResult) -> AlbumResult:
    """Write `result.new_text` when it differs from the file (sets `written`, `backup_path`, or
    `error` for a read-only album). Returns `result`."""
    if result.error or result.new_text is None or not result.changed or result._ini is None:
        return result
    try:
        result.backup_path = write_ini(result._ini, result.new_text)
        result.written = True
    except AlbumError as error:
        result.error = str(error)
    return result


# --------------------------------------------------------------------------------------------
# Whole run
# --------------------------------------------------------------------------------------------

@dataclasses.dataclass
class TaggingSummary:
    """Result of `tag_album` over one album or a tree of albums."""

    albums: list[AlbumResult]
    seconds: float
    update: bool

    @property
    def pictures_tagged(self) -> int:
        return sum(len(album.keywords) for album in self.albums if album.error is None)

    @property
    def skipped(self) -> list[Skipped]:
        return [item for album in self.albums for item in album.skipped]

    @property
    def files_written(self) -> list[Path]:
        return [album.ini_path for album in self.albums if album.written]

    @property
    def backups(self) -> list[Path]:
        return [album.backup_path for album in self.albums if album.backup_path]

    @property
    def errors(self) -> list[tuple[Path, str]]:
        return [(album.ini_path, album.error) for album in self.albums if album.error]

    @property
    def diff(self) -> str:
        return "".join(album.diff for album in self.albums)

    @property
    def anything_done(self) -> bool:
        """Tagged pictures and (when updating) wrote them or found the file already current."""
        if self.update:
            return any(album.done for album in self.albums)
        return self.pictures_tagged > 0

    def report(self) -> str:
        """Multi-line report: skipped pictures with reasons, errors, then a one-line summary."""
        lines = []
        for item in self.skipped:
            lines.append(f"skipped {item.path or item.name}: {item.reason}")
        for path, error in self.errors:
            lines.append(f"error {path}: {error}")
        lines.append(str(self))
        return "\n".join(lines)

    def __str__(self) -> str:
        verb = "wrote" if self.update else "would change"
        changed = (self.files_written if self.update
                   else [album.ini_path for album in self.albums if album.changed])
        where = ", ".join(str(path) for path in changed) or "nothing"
        backups = f"; backup {', '.join(str(p) for p in self.backups)}" if self.backups else ""
        return (f"tagged {self.pictures_tagged} pictures in {len(self.albums)} album(s), "
                f"skipped {len(self.skipped)}, {len(self.errors)} album error(s); {verb} "
                f"{where}{backups} ({self.seconds:.1f} s)")


def _check_language(lang: str) -> None:
    """Raise `ValueError` (before any model work) for a keyword language not installed."""
    languages = available_languages()
    if lang not in languages:
        raise ValueError(f"keyword language {lang!r} is not installed; choose one of "
                         f"{', '.join(sorted(languages))}")


def predict_pictures(
    captioner,
    paths: Sequence[Path],
    beam_width: int = 3,
    batch_size: int = 32,
    top_n: int = 1,
    progress: bool = True,
    captions: bool = True,
) -> list:
    """Score every synset (and caption, when `captions`) of the photos `paths`.

    One `captioner.predict` call (photo decoding overlaps the model across batches). Without
    `captions`, only the encoder and the tag classifier run: no beam search, which is most of the
    model's time when only `auto_tags` is written.

    Keywords are chosen later from `synset_probabilities` (`select_keywords`), so changing the
    language or the threshold never needs the model again.

    Returns:
        One `helpers.prediction.Prediction` per path, in order (failed photos carry `.error`;
        `captions` is empty when not asked for).
    """
    if not paths:
        return []
    return captioner.predict(list(paths), beam_width=beam_width, top_n=top_n, nb_keywords=0,
                             min_proba=0.0, lang="eng", batch_size=batch_size, progress=progress,
                             captions=captions)


def tag_album(
    captioner,
    album_dir: str | os.PathLike | None = None,
    album_ini: str | os.PathLike | None = None,
    lang: str = "eng",
    nb_keywords: int = 5,
    min_proba: float = 0.0,
    captions: bool = False,
    merge_into_tags: bool = False,
    recursive: bool = False,
    update: bool = True,
    beam_width: int = 3,
    batch_size: int = 32,
    progress: bool = True,
    echo: Callable[[str], None] | None = print,
) -> TaggingSummary:
    """Caption and tag every picture of an album (or album tree) and write its album.ini.

    Args:
        captioner: a `helpers.inference.Captioner` (anything with its `predict`).
        album_dir: album folder (or give `album_ini`).
        album_ini: an album.ini file; its folder is the album (not with `recursive`).
        lang: keyword language (Open Multilingual Wordnet code, see
            `helpers.keywords.available_languages()`).
        nb_keywords: keywords per picture (at most).
        min_proba: confidence threshold in [0, 1] for a keyword.
        captions: write the best caption as `description` where a picture has none. Without
            it no caption is computed (encoder + tag classifier only: no beam search).
        merge_into_tags: also add new keywords to the user's `tags`.
        recursive: tag every album folder under `album_dir` (one album.ini per folder).
        update: write album.ini; False only previews (prints `picture --> tags`).
        beam_width: beam search width of the captions; batch_size: photos per model batch.
        progress: show a progress bar.
        echo: where preview lines go (None: silent).

    Returns:
        `TaggingSummary` (pictures tagged, skipped with reasons, files written, backups, diff).

    Raises:
        ValueError: neither or both of `album_dir`/`album_ini`, `album_ini` with `recursive`,
            a folder that does not exist, `min_proba` outside [0, 1], a negative `nb_keywords`
            or a language that is not installed (all checked before the model runs).
    """
    start = time.perf_counter()
    if (album_dir is None) == (album_ini is None):
        raise ValueError("give exactly one of album_dir or album_ini")
    if album_ini is not None:
        if recursive:
            raise ValueError("recursive needs album_dir (each folder has its own album.ini)")
        ini_path = Path(album_ini)
        root = ini_path.parent
    else:
        ini_path, root = None, Path(album_dir)
    if not root.is_dir():
        raise ValueError(f"album folder {root} does not exist or is not a folder")
    if not 0.0 <= min_proba <= 1.0:
        raise ValueError(f"min_proba is a probability in [0, 1], got {min_proba}")
    if nb_keywords < 0:
        raise ValueError(f"nb_keywords must be >= 0, got {nb_keywords}")
    _check_language(lang)
    root = root.resolve()
    scans = [scan_album(folder, ini_path if folder == root else None, root)
             for folder in find_album_dirs(root, recursive)]
    jobs = [(index, name, path) for index, scan in enumerate(scans) if not scan.error
            for name, path in scan.pictures.items()]
    predictions = predict_pictures(captioner, [path for _, _, path in jobs], beam_width,
                                   batch_size, top_n=1, progress=progress, captions=captions)
    per_album: list[dict] = [{} for _ in scans]
    for (index, name, _), prediction in zip(jobs, predictions):
        per_album[index][name] = prediction
    results = []
    for scan, album_predictions in zip(scans, per_album):
        result = plan_album(scan, album_predictions, nb_keywords, min_proba, lang, captions,
                            merge_into_tags)
        if echo is not None and not update:
            for name, words in result.keywords.items():
                prefix = "" if scan.album_dir == root else f"{scan.album_dir.relative_to(root)}/"
                echo(f"{prefix}{name} --> {','.join(words)}")
        if update:
            apply_plan(result)
        results.append(result)
    return TaggingSummary(results, time.perf_counter() - start, update)


# --------------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------------

def _run(args: argparse.Namespace) -> int:
    from helpers import inference
    from helpers.train import resolve_run_dir

    folder = args.album_dir if args.album_dir is not None else args.album_ini.parent
    if not folder.is_dir():  # checked before the model is loaded
        print(f"tag-album: album folder {folder} does not exist or is not a folder")
        return 2
    run_dir = resolve_run_dir(args.run)
    bundle = run_dir / "bundle" if (run_dir / "bundle").is_dir() else run_dir
    if not (bundle / "bundle.json").is_file():
        print(f"tag-album: no trained model in {run_dir} (expected {run_dir}/bundle/); train one "
              "with `python -m helpers train --run NAME`")
        return 2
    captioner = inference.Captioner.from_bundle(bundle)
    try:
        summary = tag_album(
            captioner, album_dir=args.album_dir, album_ini=args.album_ini, lang=args.lang,
            nb_keywords=args.nb_keywords, min_proba=args.min_proba, captions=args.captions,
            merge_into_tags=args.merge_into_tags, recursive=args.recursive,
            update=not args.no_update, beam_width=args.beam_width, batch_size=args.batch_size)
    except ValueError as error:
        print(f"tag-album: {error}")
        return 2
    if args.no_update and summary.diff:
        print(summary.diff)
    print(summary.report())
    return 0 if summary.anything_done else 1


def add_cli(subparsers) -> None:
    """Register `tag-album`."""
    parser = subparsers.add_parser(
        "tag-album", help="write auto_tags (and captions) into MyPhotoShare album.ini files",
        description="Caption and tag the pictures of a MyPhotoShare album and write `auto_tags` "
                    "into its album.ini, keeping every comment and value of the user. Exit "
                    "status is non-zero only when nothing could be done.")
    parser.add_argument("--run", required=True,
                        help="run name or folder (runs/<name>, holding bundle/) or a bundle folder")
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--album-dir", type=Path, help="album folder")
    where.add_argument("--album-ini", type=Path, help="an album.ini file (its folder is the album)")
    parser.add_argument("--lang", default="eng", help="keyword language code (default: eng)")
    parser.add_argument("--nb-keywords", type=int, default=5, help="keywords per picture (5)")
    parser.add_argument("--min-proba", type=float, default=0.0,
                        help="confidence threshold for a keyword, 0..1 (default: 0)")
    parser.add_argument("--captions", action="store_true",
                        help="write the best caption as description where there is none")
    parser.add_argument("--merge-into-tags", action="store_true",
                        help="also add new keywords to the user's tags")
    parser.add_argument("--recursive", action="store_true",
                        help="tag every album folder below --album-dir")
    parser.add_argument("--no-update", action="store_true",
                        help="preview: print picture --> tags and the diff, write nothing")
    parser.add_argument("--beam-width", type=int, default=3, help="beam width for captions (3)")
    parser.add_argument("--batch-size", type=int, default=32, help="photos per model batch (32)")
    parser.set_defaults(func=_run)


def preview_items(result: AlbumResult, max_side: int = 200,
                  limit: int | None = None) -> list[tuple[object, str, str]]:
    """`(thumbnail uint8 [h, w, 3], name, "keywords\ncaption")` for the tagged pictures of
    `result`, then the skipped ones with their reason (for `helpers.plots.album_keywords_grid`).

    Args:
        result: from `plan_album` / `tag_album`.
        max_side: thumbnail size in pixels.
        limit: at most this many items (None: all).
    """
    import numpy as np

    items = []
    for name, words in result.keywords.items():
        text = ", ".join(words) or "(no keyword above the threshold)"
        if name in result.descriptions:
            text += "\n" + result.descriptions[name]
        items.append((result.album_dir / name, name, text))
    for item in result.skipped:
        if item.path is not None and item.path.exists():
            items.append((item.path, item.name, "skipped: " + item.reason))
    previews = []
    for path, name, text in items[:limit]:
        try:
            pixels = images.load_thumbnail(path, max_side)
        except images.ImageLoadError:
            pixels = np.full((max_side * 3 // 4, max_side, 3), 235, np.uint8)  # grey placeholder
        previews.append((pixels, name, text))
    return previews
