"""XMP sidecars: keywords for Lightroom, darktable, digiKam, Immich... without touching a photo.

Each tagged photo gets its keywords in an XMP sidecar, read and written by ExifTool (Debian
`libimage-exiftool-perl`, through PyExifTool); no XML is built by hand:

* `dc:subject`: the flat keywords; `lr:hierarchicalSubject`: each keyword's WordNet path, general
  to specific, pipe-separated as Lightroom and digiKam write it (`animal|dog|golden retriever`;
  darktable reads it when present and then ignores `dc:subject`, so both are written). A `|`
  inside one level becomes a space.
* Naming (`SIDECAR_NAMINGS`): `photo.jpg.xmp` (darktable, digiKam; Immich reads it), the
  default, or `photo.xmp` (Lightroom).
* An existing sidecar is merged: every namespace, property and keyword in it survives (ExifTool
  rewrites the RDF, not its meaning); our keywords are appended, without duplicates
  (case-insensitive). What we added is recorded in the sidecar, in our own namespace
  (`NAMESPACE_URI`, prefix `tagalbum`: `AddedSubject`, `AddedHierarchicalSubject`,
  `RejectedSubject`), so `--untag` removes exactly that, and a keyword the user removed (from
  `dc:subject`, e.g. in digiKam) is never added again.
* Writes are atomic (a temporary copy beside the sidecar, edited by ExifTool, read back and
  checked, then `os.replace`), a sidecar we change is kept as `<sidecar>.bak`, and a sidecar that
  changed on disk since it was read is not overwritten. A sidecar that is not XMP, unreadable or
  read-only is reported; its photo is skipped, the others go on.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
import secrets
import shutil
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path

from helpers.album.files import AlbumError, atomic_write, default_mode, read_only
from helpers.wordnet import hierarchy
from helpers.wordnet.keywords import unique_keywords

SIDECAR_NAMINGS = ("photo.jpg.xmp", "photo.xmp")
BACKUP_SUFFIX = ".bak"
NAMESPACE_URI = "urn:tag-album:xmp:1.0/"
SUBJECT, HIERARCHICAL = "XMP-dc:Subject", "XMP-lr:HierarchicalSubject"
ADDED, ADDED_HIERARCHICAL, REJECTED = ("XMP-tagalbum:AddedSubject",
                                       "XMP-tagalbum:AddedHierarchicalSubject",
                                       "XMP-tagalbum:RejectedSubject")
LISTS = (SUBJECT, HIERARCHICAL, ADDED, ADDED_HIERARCHICAL, REJECTED)
INSTALL_HINT = ("XMP sidecars need ExifTool and PyExifTool: `apt-get install "
                "libimage-exiftool-perl` (Debian/Ubuntu; `.ci/install-exiftool` does it), `brew "
                "install exiftool` (macOS) or https://exiftool.org, then `pip install -r "
                "requirements.txt`")
_CONFIG = """\
%Image::ExifTool::UserDefined::tagalbum = (
    GROUPS => { 0 => 'XMP', 1 => 'XMP-tagalbum', 2 => 'Image' },
    NAMESPACE => { 'tagalbum' => '""" + NAMESPACE_URI + """' },
    WRITABLE => 'string',
    AddedSubject => { List => 'Bag' },
    AddedHierarchicalSubject => { List => 'Bag' },
    RejectedSubject => { List => 'Bag' },
);
%Image::ExifTool::UserDefined = (
    'Image::ExifTool::XMP::Main' => {
        tagalbum => { SubDirectory => { TagTable => 'Image::ExifTool::UserDefined::tagalbum' } },
    },
);
1;
"""


class XmpError(AlbumError):
    """A sidecar that cannot be read or written safely (the message says why)."""


class ExifToolMissing(XmpError):
    """ExifTool or PyExifTool is not installed."""


def sidecar_path(photo: str | os.PathLike, naming: str = SIDECAR_NAMINGS[0]) -> Path:
    """`photo.jpg` -> `photo.jpg.xmp` (naming "photo.jpg.xmp") or `photo.xmp` ("photo.xmp").

    Raises:
        ValueError: an unknown naming.
    """
    photo = Path(photo)
    if naming == "photo.jpg.xmp":
        return photo.with_name(photo.name + ".xmp")
    if naming == "photo.xmp":
        return photo.with_suffix(".xmp")
    raise ValueError(f"sidecar naming must be one of {SIDECAR_NAMINGS}, got {naming!r}")


def check_exiftool() -> None:
    """Raises `ExifToolMissing` (with what to install) unless ExifTool and PyExifTool are here."""
    try:
        import exiftool  # noqa: F401  (PyExifTool)
    except ImportError:
        raise ExifToolMissing(f"PyExifTool is not installed. {INSTALL_HINT}") from None
    if shutil.which("exiftool") is None:
        raise ExifToolMissing(f"the `exiftool` program is not on PATH. {INSTALL_HINT}")


def clean_level(word: str) -> str:
    """One level of a hierarchical keyword: no `|` (the level separator), one line."""
    return " ".join(word.replace("|", " ").split())


@functools.lru_cache(maxsize=65536)
def keyword_path(synset: str, keyword: str, lang: str) -> tuple[str, ...]:
    """The keyword's hierarchy for `lr:hierarchicalSubject`, general -> specific, ending with
    `keyword` itself (`helpers.wordnet.hierarchy.keyword_path`)."""
    try:
        path = list(hierarchy.keyword_path(synset, lang))
    except ValueError:   # not a WordNet synset: the keyword alone
        path = []
    if not path or path[-1].casefold() != keyword.casefold():
        path.append(keyword)
    return tuple(path)


class ExifTool:
    """One ExifTool process (`-stay_open`), with our namespace defined; use as a context manager.

    Raises:
        ExifToolMissing: ExifTool or PyExifTool is not installed.
    """

    def __init__(self):
        check_exiftool()
        import exiftool

        handle, self._config = tempfile.mkstemp(prefix="tag-album-", suffix=".config")
        with os.fdopen(handle, "w", encoding="utf-8") as file:
            file.write(_CONFIG)
        self._process = exiftool.ExifTool(common_args=["-G1", "-n", "-charset", "filename=utf8"],
                                          config_file=self._config)
        self._process.run()

    def close(self) -> None:
        if self._process.running:
            self._process.terminate()
        Path(self._config).unlink(missing_ok=True)

    def __enter__(self) -> ExifTool:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def read(self, paths: Sequence[Path]) -> dict[Path, dict | str]:
        """Our lists (and which other XMP properties exist) of each file, or why it is unreadable.

        Returns:
            path -> `{tag: [values]}` for every tag of `LISTS` plus `"other"`: the names of the
            other XMP properties; or path -> the reason (not XMP, format error, unreadable).
        """
        if not paths:
            return {}
        # -m: every item of lists longer than 1,000 (format errors are still reported)
        output = self._process.execute("-j", "-m", "-XMP:all", "-FileType", "-Error", "-Warning",
                                       *[str(path) for path in paths])
        try:  # numbers stay text exactly as printed ("1.50", not 1.5)
            records = json.loads(output, parse_int=str, parse_float=str) if output.strip() else []
        except json.JSONDecodeError:
            records = []
        by_path = {record.get("SourceFile"): record for record in records}
        results: dict[Path, dict | str] = {}
        for path in paths:
            record = by_path.get(str(path))
            if record is None:
                results[path] = f"ExifTool cannot read it ({self._process.last_stderr.strip()})"
                continue
            warning = str(record.get("ExifTool:Warning", ""))
            if "ExifTool:Error" in record:
                results[path] = str(record["ExifTool:Error"])
            elif record.get("File:FileType") != "XMP":
                results[path] = f"not an XMP file (ExifTool sees {record.get('File:FileType', 'no format')})"
            elif "format error" in warning.lower():
                results[path] = warning
            else:
                values = {tag: _as_list(record.get(tag)) for tag in LISTS}
                values["other"] = sorted(key for key in record if key.startswith("XMP-")
                                         and key not in LISTS and key != "XMP-x:XMPToolkit")
                results[path] = values
        return results

    def write(self, path: Path, values: dict[str, list[str]], create: bool) -> None:
        """Set the lists `values` (an empty list deletes the property) in `path`, in place, or
        into a new file `path` when `create`.

        Raises:
            XmpError: ExifTool refused (its message is given).
        """
        handle, arguments = tempfile.mkstemp(prefix="tag-album-", suffix=".json")
        with os.fdopen(handle, "w", encoding="utf-8") as file:
            json.dump([{"SourceFile": "*", **values}], file, ensure_ascii=False)
        try:
            if create:
                self._process.execute(f"-json={arguments}", "-o", str(path))
            else:
                self._process.execute(f"-json={arguments}", "-overwrite_original", str(path))
        finally:
            Path(arguments).unlink(missing_ok=True)
        if self._process.last_status != 0 or not path.is_file():
            raise XmpError(f"ExifTool could not write {path}: "
                           f"{self._process.last_stderr.strip() or 'no message'}")


def _as_list(value) -> list[str]:
    if value is None:
        return []
    return [str(item) for item in value] if isinstance(value, list) else [str(value)]


def _folded(words: Iterable[str]) -> set[str]:
    return {word.casefold() for word in words}


def _without(words: Sequence[str], unwanted: Iterable[str]) -> list[str]:
    unwanted = _folded(unwanted)
    return [word for word in words if word.casefold() not in unwanted]


@dataclasses.dataclass
class SidecarPlan:
    """A sidecar as it is and as it will be.

    Attributes:
        photo, path: the photo and its sidecar.
        raw: the sidecar's bytes when read (None: no sidecar yet), to detect a concurrent edit.
        before: the lists read (`LISTS` tags -> values; `{}` for a new sidecar).
        after: the lists to write (`{}`: nothing to change).
        delete: the sidecar only held what we added: remove it (untag).
        error: why this sidecar is left alone (then its photo is reported as skipped).
    """

    photo: Path
    path: Path
    raw: bytes | None = None
    before: dict[str, list[str]] = dataclasses.field(default_factory=dict)
    after: dict[str, list[str]] = dataclasses.field(default_factory=dict)
    other: list[str] = dataclasses.field(default_factory=list)
    delete: bool = False
    error: str | None = None

    @property
    def changed(self) -> bool:
        return self.error is None and (self.delete or any(
            self.after[tag] != self.before.get(tag, []) for tag in self.after))

    @property
    def added(self) -> list[str]:
        """Keywords this plan adds to `dc:subject`."""
        return _without(self.after.get(SUBJECT, []), self.before.get(SUBJECT, []))

    @property
    def removed(self) -> list[str]:
        """Keywords this plan takes out of `dc:subject`."""
        if self.delete:
            return list(self.before.get(SUBJECT, []))
        return _without(self.before.get(SUBJECT, []), self.after.get(SUBJECT, self.before.get(SUBJECT, [])))

    def describe(self) -> str:
        """`photo.jpg.xmp: +dog +animal -cat` (or the reason it is skipped)."""
        if self.error:
            return f"{self.path.name}: skipped ({self.error})"
        words = [f"+{word}" for word in self.added] + [f"-{word}" for word in self.removed]
        what = " ".join(words) or ("deleted" if self.delete else "no keyword change")
        return f"{self.path.name}{' (new)' if self.raw is None and not self.delete else ''}: {what}"


def read_sidecars(session: ExifTool, photos: Iterable[Path], naming: str = SIDECAR_NAMINGS[0]
                  ) -> dict[Path, SidecarPlan]:
    """The current state of each photo's sidecar (one ExifTool call for all existing ones), as
    `SidecarPlan`s with nothing to change yet; two photos sharing a sidecar name (`a.jpg` and
    `a.png` with naming "photo.xmp") are both left alone with a reason."""
    plans = {photo: SidecarPlan(photo, sidecar_path(photo, naming)) for photo in photos}
    owners: dict[Path, list[Path]] = {}
    for photo, plan in plans.items():
        owners.setdefault(plan.path, []).append(photo)
    existing = []
    for path, sharing in owners.items():
        if len(sharing) > 1:
            for photo in sharing:
                plans[photo].error = (f"{path.name} would be the sidecar of "
                                      f"{', '.join(p.name for p in sharing)}: use --sidecar-name "
                                      "photo.jpg.xmp")
            continue
        plan = plans[sharing[0]]
        if not os.path.lexists(path):
            continue
        try:
            plan.raw = path.read_bytes()
            existing.append(path)
        except OSError as error:
            plan.error = f"cannot read the sidecar ({error.strerror or error})"
    states = session.read(existing)
    for plan in plans.values():
        state = states.get(plan.path)
        if isinstance(state, str):
            plan.error = f"sidecar unreadable: {state}"
        elif state is not None:
            plan.other = state.pop("other")
            plan.before = state
    return plans


def plan_keywords(plan: SidecarPlan, keywords: Sequence[tuple[str, Sequence[str]]]) -> SidecarPlan:
    """Set `plan.after` for these keywords: `[(keyword, path general -> specific)]`.

    Keywords we added that are now missing from `dc:subject` were removed by the user: recorded
    as rejected and never added again; ours that are no longer chosen are taken out.
    """
    if plan.error:
        return plan
    before = {tag: plan.before.get(tag, []) for tag in LISTS}
    subjects, hierarchical = before[SUBJECT], before[HIERARCHICAL]
    ours = [word for word in before[ADDED] if word.casefold() in _folded(subjects)]
    rejected = unique_keywords(_without(before[REJECTED], subjects)
                       + _without(before[ADDED], subjects))
    chosen = [(word, path) for word, path in keywords if word.casefold() not in _folded(rejected)]
    words = unique_keywords(word for word, _ in chosen)
    paths = unique_keywords("|".join(clean_level(level) for level in path if clean_level(level))
                    for _, path in chosen)
    drop = _without(ours, words)
    add = _without(words, subjects)
    ours_paths = [path for path in before[ADDED_HIERARCHICAL] if path.casefold() in _folded(hierarchical)]
    drop_paths = _without(ours_paths, paths)
    add_paths = _without(paths, hierarchical)
    plan.after = {
        SUBJECT: _without(subjects, drop) + add,
        HIERARCHICAL: _without(hierarchical, drop_paths) + add_paths,
        ADDED: _without(ours, drop) + add,
        ADDED_HIERARCHICAL: _without(ours_paths, drop_paths) + add_paths,
        REJECTED: rejected,
    }
    if plan.raw is None and not plan.after[SUBJECT] and not plan.after[HIERARCHICAL]:
        plan.after = {}   # no keyword for a photo without sidecar: do not create one
    return plan


def plan_untag(plan: SidecarPlan) -> SidecarPlan:
    """Set `plan.after` to remove what we added (and our record); `delete` when nothing else
    would be left in the sidecar."""
    if plan.error or plan.raw is None or not any(plan.before.get(tag) for tag in LISTS[2:]):
        return plan
    subjects = _without(plan.before.get(SUBJECT, []), plan.before.get(ADDED, []))
    hierarchical = _without(plan.before.get(HIERARCHICAL, []),
                            plan.before.get(ADDED_HIERARCHICAL, []))
    plan.after = {SUBJECT: subjects, HIERARCHICAL: hierarchical, ADDED: [],
                  ADDED_HIERARCHICAL: [], REJECTED: []}
    plan.delete = not subjects and not hierarchical and not plan.other
    return plan


def apply_sidecar(session: ExifTool, plan: SidecarPlan) -> Path | None:
    """Write `plan` (see the module docstring: atomic, checked, with a backup).

    Returns:
        The backup path (None for a new sidecar or nothing to do).

    Raises:
        XmpError: read-only, changed on disk since it was read, or ExifTool refused; the sidecar
            is then as it was.
    """
    if not plan.changed:
        return None
    path = plan.path
    current = path.read_bytes() if path.exists() else None
    if current != plan.raw:
        raise XmpError(f"{path} changed on disk since it was read (edited meanwhile?); not "
                       "written: run again")
    if (plan.raw is not None and read_only(path)) or read_only(path.parent):
        raise XmpError(f"{path if plan.raw is not None else path.parent} is read-only; the "
                       "sidecar was not written")
    backup = None if plan.raw is None else path.with_name(path.name + BACKUP_SUFFIX)
    if plan.delete:
        atomic_write(backup, plan.raw, os.stat(path).st_mode & 0o7777)
        path.unlink()
        return backup
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp.xmp")
    try:
        if plan.raw is not None:
            temporary.write_bytes(plan.raw)
        session.write(temporary, plan.after, create=plan.raw is None)
        state = session.read([temporary])[temporary]
        wrong = [tag for tag in plan.after
                 if isinstance(state, str) or state.get(tag, []) != plan.after[tag]]
        if wrong:
            raise XmpError(f"{path}: {', '.join(wrong)} did not read back as written; not written")
        mode = os.stat(path).st_mode & 0o7777 if plan.raw is not None else default_mode()
        os.chmod(temporary, mode)
        if backup is not None:
            atomic_write(backup, plan.raw, mode)
        if (path.read_bytes() if path.exists() else None) != plan.raw:
            raise XmpError(f"{path} changed on disk while it was written; not written: run again")
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)
    return backup
