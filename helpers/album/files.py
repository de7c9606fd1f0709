"""Reading and writing an album's files safely: encodings, atomic replacement, backups.

`album.ini` (and any text file tag-album edits) is read with its encoding detected (UTF-8 with or
without BOM, else cp1252, else latin-1) and written back in the same one, through a temporary file
in the same folder and `os.replace`, so a crash leaves either the old or the new file, never half
of one; the previous version is kept as `<file>.bak`, and a file changed on disk since it was read
is never overwritten.
"""

from __future__ import annotations

import dataclasses
import os
import tempfile
from pathlib import Path

BACKUP_SUFFIX = ".bak"                   # album.ini.bak: the previous version of album.ini
ENCODINGS = ("utf-8", "cp1252", "latin-1")  # tried in this order; latin-1 decodes any byte


class AlbumError(RuntimeError):
    """An album.ini that cannot be read or written safely (the message says why and what to do)."""



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
        return line_ending(self.text)


def line_ending(text: str) -> str:
    """"\\r\\n" when every line break of `text` is CRLF, else "\\n"."""
    crlf = text.count("\r\n")
    return "\r\n" if crlf and crlf == text.count("\n") else "\n"


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


def write_ini(ini: IniFile, text: str | None) -> Path | None:
    """Write `text` to `ini.path` atomically in `ini.encoding`, keeping `album.ini.bak`.

    The previous file is first copied to `album.ini.bak` (atomically too); the new content goes
    to a temporary file in the same folder which then replaces album.ini (`os.replace`), so a
    crash leaves either the old or the new file, never half of one. File permissions are kept.
    `text=None` deletes album.ini (after the backup): what `untag_ini_text` asks for a file this
    tool created.

    Returns:
        The backup path, or None when album.ini did not exist.

    Raises:
        AlbumError: read-only folder or file, a character the file's encoding cannot hold, or
            album.ini changed on disk since it was read. Nothing is changed then.
    """
    path = ini.path
    try:
        data = None if text is None else text.encode(ini.encoding)
    except UnicodeEncodeError as error:
        bad = text[error.start:error.end]
        raise AlbumError(
            f"{path} is encoded in {ini.encoding}, which cannot hold {bad!r}; nothing was "
            "written. Convert it to UTF-8 (e.g. `iconv -f latin1 -t utf-8`) or choose another "
            "language.") from None
    if ini.exists and read_only(path):
        raise AlbumError(f"{path} is read-only; nothing was written (make it writable to tag)")
    if read_only(path.parent):
        raise AlbumError(f"the album folder {path.parent} is read-only; nothing was written "
                         "(make it writable, or preview with update=False / --no-update)")
    current = path.read_bytes() if path.exists() else None
    if current != ini.raw:
        raise AlbumError(f"{path} changed on disk since it was read (edited meanwhile?); "
                         "nothing was written: run again")
    mode = (os.stat(path).st_mode & 0o7777) if ini.exists else None
    backup = None
    if ini.exists:
        backup = path.with_name(path.name + BACKUP_SUFFIX)
        atomic_write(backup, ini.raw, mode)
    if data is None:
        path.unlink(missing_ok=True)
    else:
        atomic_write(path, data, mode)
    return backup


def read_only(path: Path) -> bool:
    """True when we may not write `path`: no write permission, a read-only file system, or no
    write bit at all (a user's "do not touch" mark, respected even when running as root)."""
    try:
        no_write_bits = not (os.stat(path).st_mode & 0o222)
    except OSError:
        return True
    return no_write_bits or not os.access(path, os.W_OK)


def atomic_write(path: Path, data: bytes, mode: int | None, suffix: str = ".tmp") -> None:
    """Write `data` to a temporary file beside `path`, then `os.replace` it (mode kept or from
    the umask).

    Raises:
        AlbumError: the folder cannot be written.
    """
    try:
        handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=suffix)
    except OSError as error:
        raise AlbumError(f"cannot write in {path.parent} ({error.strerror or error}); nothing "
                         "was changed") from None
    try:
        with os.fdopen(handle, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.chmod(temporary, default_mode() if mode is None else mode)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def default_mode() -> int:
    """0o666 minus the umask: the mode a new file gets."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask
