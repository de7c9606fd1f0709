"""Files of versioned JSON, and `IndexedNames`, the base of the vocabularies saved so.

A versioned JSON file is one UTF-8 JSON object on one line (non-ASCII characters kept as they are,
then a newline) that starts with its format's name and version::

    {"format": "helpers.vocab.Vocabulary", "format_version": 1, "min_count": 5, ...}

`read_versioned_json` accepts a file of that name and a version up to the one the code writes
(reading an older layout is the caller's business), and says clearly what is wrong with any other:
another format, a newer version, a file that is not JSON (truncated, say). `write_versioned_json`
writes a temporary file beside the target, flushes it to disk and renames it over the target
(`os.replace`): a crash or a full disk leaves the previous file or none, never half of one.

`IndexedNames` is what the caption `helpers.text.vocab.Vocabulary` and the tag
`helpers.wordnet.synset_vocabulary.SynsetVocabulary` share: distinct names in id order, the
container methods over them, and `to_dict` / `from_dict` / `save` / `load` in that format.
"""

from __future__ import annotations

import collections
import json
import os
import stat
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import ClassVar, Self

FORMAT_KEY = "format"                 # the format's name, e.g. "helpers.vocab.Vocabulary"
VERSION_KEY = "format_version"        # int, bumped when the layout of the payload changes


# --- the functions ---------------------------------------------------------------------------
def versioned_dict(format_name: str, version: int, payload: Mapping) -> dict:
    """`{"format": format_name, "format_version": version, **payload}`: what a file holds.

    Raises:
        ValueError: if `payload` has a key "format" or "format_version" of its own.
    """
    clashes = sorted({FORMAT_KEY, VERSION_KEY} & set(payload))
    if clashes:
        raise ValueError(f"the payload of a {format_name} cannot have the keys {clashes}: "
                         "they hold the format's name and version")
    return {FORMAT_KEY: format_name, VERSION_KEY: version, **payload}


def payload_of(data, format_name: str, version: int, kind: str) -> dict:
    """Check the format's name and version of `data` (as read from a file) and return the rest.

    Args:
        data: the decoded JSON.
        format_name: the name the file must have.
        version: the newest version this code reads; any older one (an int) is accepted.
        kind: what the file holds, for the messages (a class name such as "Vocabulary").

    Returns:
        `data` without its "format" and "format_version" keys.

    Raises:
        ValueError: if `data` is not an object of that format, or has a newer or no version.
    """
    if not isinstance(data, Mapping):
        raise ValueError(f"not a saved {kind} (a JSON {type(data).__name__}, expected an object "
                         f"of format {format_name!r})")
    if data.get(FORMAT_KEY) != format_name:
        raise ValueError(f"not a saved {kind} (format {data.get(FORMAT_KEY)!r}, "
                         f"expected {format_name!r})")
    found = data.get(VERSION_KEY)
    if not isinstance(found, int) or found > version:
        raise ValueError(f"{kind} format version {found!r} is not supported (this code reads "
                         f"versions <= {version}); update the helpers package")
    return {key: value for key, value in data.items() if key not in (FORMAT_KEY, VERSION_KEY)}


def write_versioned_json(path: str | os.PathLike, format_name: str, version: int,
                         payload: Mapping) -> Path:
    """Write `payload` under its format's name and version, atomically (see the module docstring).

    Creates the missing parent folders. An existing file keeps its permissions; a new one gets
    the usual ones (0o666 less the umask). A symbolic link is written through, not replaced.

    Args:
        path: the file to write.
        format_name, version: written first, as "format" and "format_version".
        payload: the other keys, JSON-serialisable.

    Returns:
        `path`, as a `Path`.

    Raises:
        ValueError: if `payload` uses the keys "format" or "format_version".
        TypeError: if `payload` is not JSON-serialisable (nothing is written).
        OSError: if the folder cannot be written (the target is left as it was).
    """
    path = Path(path)
    text = json.dumps(versioned_dict(format_name, version, payload), ensure_ascii=False) + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    replace_atomically(Path(os.path.realpath(path)), text.encode("utf-8"))
    return path


def read_versioned_json(path: str | os.PathLike, format_name: str, version: int, kind: str) -> dict:
    """Read a file written by `write_versioned_json` and return its payload.

    Args:
        path: the file.
        format_name: the name the file must have.
        version: the newest version this code reads (older ones are returned as they are).
        kind: the class whose `save` writes such files, for the messages ("Vocabulary").

    Returns:
        The payload: the file's object without "format" and "format_version".

    Raises:
        FileNotFoundError: if `path` does not exist.
        ValueError: if the file is not UTF-8 JSON (e.g. truncated), or is another format, or a
            newer version (see `payload_of`).
    """
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as error:          # json.JSONDecodeError, UnicodeDecodeError
        raise ValueError(f"{path} is not valid JSON ({error}); was it written by "
                         f"{kind}.save?") from error
    try:
        return payload_of(data, format_name, version, kind)
    except ValueError as error:
        raise ValueError(f"{path}: {error}") from None


def replace_atomically(path: Path, data: bytes) -> None:
    """Write `data` to a new file beside `path`, fsync it, then rename it onto `path`."""
    try:
        mode = stat.S_IMODE(os.stat(path).st_mode)
    except FileNotFoundError:
        mode = None
    temporary = path.with_name(f".{path.name}.{uuid.uuid4().hex[:12]}.tmp")
    try:
        # 0o666 less the umask, as a new file gets; O_EXCL: never write through another's file
        handle = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        with open(handle, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        if mode is not None:
            os.chmod(temporary, mode)
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


# --- the base class --------------------------------------------------------------------------
class IndexedNames:
    """Distinct names, one id each (their index), saved as versioned JSON.

    The base of `helpers.text.vocab.Vocabulary` and
    `helpers.wordnet.synset_vocabulary.SynsetVocabulary`. `len`, `in` and `==` work on the
    names: two of the same kind (same `FORMAT_NAME`) are equal when their names are, in the
    same order, whatever their counts.

    A subclass sets `FORMAT_NAME` and `FORMAT_VERSION`, calls `__init__` with its names, and
    implements `_payload` (what it saves besides the format) and `_from_payload` (its inverse).
    """

    FORMAT_NAME: ClassVar[str]
    FORMAT_VERSION: ClassVar[int]

    def __init__(self, names: Sequence[str], what: str = "names"):
        """Keep `names` in id order.

        Args:
            names: the names, the index being the id.
            what: what they are, for the message ("words", "synsets").

        Raises:
            ValueError: if a name is repeated.
        """
        names = list(names)
        duplicates = sorted(name for name, count in collections.Counter(names).items() if count > 1)
        if duplicates:
            raise ValueError(f"{what} repeated in the vocabulary: {duplicates[:10]}")
        self._names: list[str] = names
        self._index: dict[str, int] = {name: i for i, name in enumerate(names)}

    def __len__(self) -> int:
        return len(self._names)

    def __contains__(self, name: str) -> bool:
        return name in self._index

    def __eq__(self, other) -> bool:
        if not isinstance(other, IndexedNames):
            return NotImplemented
        return self.FORMAT_NAME == other.FORMAT_NAME and self._names == other._names

    __hash__ = None   # mutable and compared by value: not a dict key

    # persistence -----------------------------------------------------------------------------
    def _payload(self) -> dict:
        """What `save` writes besides the format's name and version (JSON-serialisable)."""
        raise NotImplementedError

    @classmethod
    def _from_payload(cls, payload: Mapping) -> Self:
        """The object `_payload` describes (that of any version up to `FORMAT_VERSION`)."""
        raise NotImplementedError

    def to_dict(self) -> dict:
        """The saved object: format's name and version, then `_payload`."""
        return versioned_dict(self.FORMAT_NAME, self.FORMAT_VERSION, self._payload())

    @classmethod
    def from_dict(cls, data: Mapping) -> Self:
        """Inverse of `to_dict`.

        Raises:
            ValueError: if `data` is not of this format or has a newer version.
        """
        return cls._from_payload(payload_of(data, cls.FORMAT_NAME, cls.FORMAT_VERSION, cls.__name__))

    def save(self, path: str | os.PathLike) -> Path:
        """Write as one line of UTF-8 JSON, atomically (`write_versioned_json`); returns the path."""
        return write_versioned_json(path, self.FORMAT_NAME, self.FORMAT_VERSION, self._payload())

    @classmethod
    def load(cls, path: str | os.PathLike) -> Self:
        """Read a file written by `save`.

        Raises:
            FileNotFoundError: if `path` does not exist.
            ValueError: if the file is not JSON, or not of this format, or of a newer version.
        """
        return cls._from_payload(read_versioned_json(path, cls.FORMAT_NAME, cls.FORMAT_VERSION,
                                                     cls.__name__))
