"""Find the pictures of an album folder (or tree) safely, with its `album.ini`.

Which pictures: every picture with a section in album.ini whose file exists, *plus* every picture
file of the folder without a section (their sections are appended in name order). Sections for
absent files, non-pictures (videos) and names that leave the folder (`../x.jpg`, a symlink out of
the album) are reported and left untouched. Hidden files are ignored.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

from helpers.album.files import AlbumError, IniFile, read_ini
from helpers.album.ini import ALBUM_INI, RESERVED_SECTIONS, parse_like_myphotoshare
from helpers.data import images

# --------------------------------------------------------------------------------------------
# Finding the pictures


@dataclasses.dataclass(frozen=True)
class Skipped:
    """A picture (or album.ini section, or sidecar) not tagged, and why."""

    name: str
    reason: str
    path: Path | None = None


@dataclasses.dataclass
class AlbumScan:
    """The pictures of one album folder: `ini` its album.ini (maybe not existing yet),
    `pictures` name -> file (album.ini's order, then the folder's other pictures),
    `new_sections` the names without a section yet, `skipped` what is not tagged and why,
    `error` why the album cannot be tagged at all (invalid album.ini...)."""

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

    def refused(reason: str) -> AlbumScan:
        return AlbumScan(album_dir, IniFile(ini_path, "", "utf-8", None), {}, [], [], reason)

    if not _inside(ini_path.parent, root) or ini_path.parent.resolve() != album_dir:
        return refused(f"{ini_path} is not in the album folder {album_dir} (refused)")
    if ini_path.is_symlink():
        if not _inside(ini_path, root):
            return refused(f"{ini_path} is a symbolic link to outside the album (refused)")
        ini_path = ini_path.resolve()  # edit the file the link points to; keep the link
    try:
        ini = read_ini(ini_path)
        sections = parse_like_myphotoshare(ini.text, ini_path).sections() if ini.exists else []
    except AlbumError as error:
        return refused(str(error))
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


def caption_to_description(caption: str) -> str:
    """"a dog on a sofa" -> "A dog on a sofa." (one line)."""
    text = " ".join(caption.split())
    if not text:
        return ""
    text = text[0].upper() + text[1:]
    return text if text[-1] in ".!?" else text + "."
