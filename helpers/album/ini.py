"""MyPhotoShare `album.ini`: read, edit line by line, check, and write back atomically.

MyPhotoShare (https://gitlab.com/paolobenve/myphotoshare) reads an optional `album.ini` in each
album folder with `configparser.ConfigParser(allow_no_value=True)` (default interpolation): one
section per media file name, `[album]` for the folder and `[DEFAULT]` for values every section
inherits. Its scanner reads title, description, date, the place keys and **tags**; its search
indexes title, description, tags and the file name. `auto_tags` (what mps_autotags wrote) is never
read by it.

Every edit keeps the user's bytes: the file is parsed with ConfigUpdater (which must reproduce it
exactly) only to find where each section and option lies; the lines are then edited as text, so a
line we do not change stays byte for byte (comments, blank lines, order, `[DEFAULT]`, multi-line
values, `key: value` spellings, unknown keys, encoding, CRLF, a missing final line break).

**The keys this tool owns** (one home for the rules; the README documents them for users):

* `auto_tags`: the keywords tag-album wrote. With `merge_into_tags` (the tags route), exactly the
  keywords it *added* to `tags`; otherwise (the auto_tags route) every keyword, as mps_autotags.
* `auto_tags_rejected`: keywords it had added to `tags` that the user removed since; they are
  never written again for that picture (delete them from this key to allow them again).
* `auto_tags_state`: what `--untag` must undo besides the keywords: `in tags` (the keywords of
  `auto_tags` are in `tags`), `new section`, `new tags`, `new description` (tag-album created the
  section, the `tags` key, the `description`).

Keywords are added at the end of `tags` with the file's separator (`,` or `, `), and removed
with the separator that precedes them, so tagging then untagging gives the original bytes back.
A keyword the user deletes from `auto_tags` (but keeps in `tags`) becomes the user's own.
"""

from __future__ import annotations

import configparser
import dataclasses
import difflib
from collections.abc import Mapping, Sequence
from pathlib import Path

from configupdater import ConfigUpdater
from configupdater.option import Option
from configupdater.section import Section

from helpers.album.files import AlbumError, line_ending
from helpers.wordnet.keywords import unique_keywords

ALBUM_INI = "album.ini"
AUTO_TAGS_KEY = "auto_tags"              # the key mps_autotags wrote (MyPhotoShare ignores it)
REJECTED_KEY = "auto_tags_rejected"      # keywords the user removed from tags: never re-added
STATE_KEY = "auto_tags_state"            # what --untag undoes besides the keywords
TOOL_KEYS = (AUTO_TAGS_KEY, REJECTED_KEY, STATE_KEY)
IN_TAGS, NEW_SECTION, NEW_TAGS, NEW_DESCRIPTION = "in tags", "new section", "new tags", "new description"
STATE_FLAGS = (IN_TAGS, NEW_SECTION, NEW_TAGS, NEW_DESCRIPTION)   # written in this order
RESERVED_SECTIONS = ("DEFAULT", "album")  # not pictures
NEW_FILE_HEADER = (
    "# Additional metadata for the album, pictures and videos (MyPhotoShare album.ini)\n"
    "# See syntax on https://docs.python.org/3/library/configparser.html\n"
    "# auto_tags*: written by `python -m helpers tag-album` (--untag removes what it added).\n"
)
_SEPARATORS = ",\r\n"   # between the items of a tags value
_BLANKS = " \t"


# --------------------------------------------------------------------------------------------
# Reading and parsing
# --------------------------------------------------------------------------------------------

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


def escape_value(text: str) -> str:
    """Escape `%` for configparser's BasicInterpolation (`100%` -> `100%%`)."""
    return text.replace("%", "%%")


def unescape(text: str) -> str:
    return text.replace("%%", "%")


def clean_keyword(word: str) -> str:
    """A keyword as one item of a comma-separated value: commas and line breaks become spaces,
    runs of blanks one space (what MyPhotoShare will read back)."""
    return " ".join(word.replace(",", " ").split())


def split_list(raw: str | None) -> list[str]:
    """Items of a comma (or line) separated raw value, unescaped, blanks stripped."""
    return [unescape(item.strip()) for item in (raw or "").replace("\n", ",").split(",")
            if item.strip()]


def _casefolded(words) -> set[str]:
    return {word.casefold() for word in words}


# --------------------------------------------------------------------------------------------
# The document: where every section and option lies, edited line by line
# --------------------------------------------------------------------------------------------

@dataclasses.dataclass
class _Section:
    name: str
    header: int                                   # line index of `[name]`
    options: dict[str, tuple[int, int]] = dataclasses.field(default_factory=dict)  # key -> lines
    last: int = 0                                 # line index after the last option (or header)
    removed: set[str] = dataclasses.field(default_factory=set)


class _Document:
    """album.ini text as lines; edits replace, remove or insert whole lines (or splice a value)."""

    def __init__(self, text: str, path: Path | str):
        self.original, self.path, self.newline = text, path, line_ending(text)
        self.updater = ConfigUpdater(allow_no_value=True)
        try:
            self.updater.read_string(text, source=str(path))
        except Exception as error:  # configupdater raises configparser errors and its own
            raise AlbumError(f"{path}: cannot edit it in place ({error}); nothing was changed") from None
        if str(self.updater) != text:  # must reproduce the file exactly, or we do not edit
            raise AlbumError(f"{path}: ConfigUpdater does not reproduce this file byte for byte; "
                             "nothing was changed (please report the file's layout)")
        self.lines: list[str] = []
        self.after: list[list[str]] = []            # lines inserted after each line
        self.sections: dict[str, _Section] = {}
        self.tail: list[str] = []                   # sections appended at the end
        for block in self.updater.iter_blocks():
            if isinstance(block, Section):
                section = _Section(block.name, len(self.lines))
                self._add(block.lines)
                section.last = len(self.lines)
                for child in block.iter_blocks():
                    if isinstance(child, Option):
                        start = len(self.lines)
                        section.options[child.key.lower()] = (start, start + len(child.lines))
                        section.last = start + len(child.lines)
                    self._add(child.lines)
                self.sections[block.name] = section
            else:
                self._add(block.lines)

    def _add(self, lines: list[str]) -> None:
        self.lines.extend(lines)
        self.after.extend([] for _ in lines)

    def value(self, name: str, key: str) -> str | None:
        """Raw (uninterpolated) value of an option, None when absent or without value."""
        section = self.sections.get(name)
        if section is None or key not in section.options or key in section.removed:
            return None
        return self.updater[name][key].value

    def has(self, name: str, key: str) -> bool:
        section = self.sections.get(name)
        return section is not None and key in section.options and key not in section.removed

    def option_text(self, name: str, key: str) -> str:
        start, end = self.sections[name].options[key]
        return "".join(self.lines[start:end])

    def replace(self, name: str, key: str, text: str) -> None:
        start, end = self.sections[name].options[key]
        self.lines[start:end] = [text] + [""] * (end - start - 1)

    def set(self, name: str, key: str, value: str) -> None:
        """`key = value` in an existing section: in place, else after its last option."""
        line = f"{key} = {value}{self.newline}"
        if self.has(name, key):
            if self.value(name, key) != value:
                self.replace(name, key, line)
        else:
            self.after[self.sections[name].last - 1].append(line)

    def remove(self, name: str, key: str) -> None:
        if self.has(name, key):
            self.replace(name, key, "")
            self.sections[name].removed.add(key)

    def remove_header(self, name: str) -> None:
        """Remove `[name]` and the blank line before it (how `append` wrote it)."""
        header = self.sections[name].header
        self.lines[header] = ""
        if header > 0 and not self.lines[header - 1].strip() and not self.after[header - 1]:
            self.lines[header - 1] = ""

    def append(self, name: str, options: Sequence[tuple[str, str]]) -> None:
        self.tail.append(self.newline + f"[{name}]" + self.newline
                         + "".join(f"{key} = {value}{self.newline}" for key, value in options))

    def text(self) -> str:
        """The edited text; a piece after a line without line break gets one, and a file that
        did not end with a line break still does not."""
        out: list[str] = []
        pieces = [piece for line, after in zip(self.lines, self.after) for piece in (line, *after)]
        for piece in pieces + self.tail:
            if piece:
                if out and not out[-1].endswith("\n"):
                    out[-1] += self.newline
                out.append(piece)
        if not self.original:   # a new file: a header, when there is anything to write
            return NEW_FILE_HEADER + "".join(out) if out else ""
        text = "".join(out)
        if not self.original.endswith("\n") and text.endswith("\n"):
            text = text[:-2] if text.endswith("\r\n") else text[:-1]
        return text


# --------------------------------------------------------------------------------------------
# A list value (tags) edited as text: append at the end, remove with the separator before
# --------------------------------------------------------------------------------------------

def _value_start(option_text: str) -> int:
    """Index after the first `=` or `:` of the option's first line (configparser's OPTCRE)."""
    first_line = option_text.split("\n", 1)[0]
    positions = [position for position in (first_line.find("="), first_line.find(":"))
                 if position >= 0]
    return min(positions) + 1 if positions else -1


def _item_spans(text: str, start: int) -> list[tuple[int, int]]:
    """`(start, end)` of every non-empty item of a list value in `text[start:]`."""
    spans, begin = [], start
    for index in range(start, len(text) + 1):
        if index == len(text) or text[index] in _SEPARATORS:
            first, last = begin, index
            while first < last and text[first] in _BLANKS:
                first += 1
            while last > first and text[last - 1] in _BLANKS:
                last -= 1
            if first < last:
                spans.append((first, last))
            begin = index + 1
    return spans


def _remove_item(text: str, start: int, span: tuple[int, int]) -> str:
    """Remove one item with the comma after it (when one follows) or else the one before it."""
    first, last = span
    while first > start and text[first - 1] in _BLANKS:
        first -= 1
    after = last
    while after < len(text) and text[after] in _BLANKS:
        after += 1
    if after < len(text) and text[after] == ",":
        return text[:first] + text[after + 1:]
    if first > start and text[first - 1] == ",":
        first -= 1
    return text[:first] + text[last:]


def _edit_list(option_text: str, remove: Sequence[str], add: Sequence[str]) -> str:
    """The option's text (all its lines) without the items `remove` (case-insensitive) and with
    `add` (escaped) appended after its last item, in the file's own separator style."""
    body = option_text.rstrip("\r\n")
    line_end = option_text[len(body):]
    start = _value_start(body)
    if start < 0:   # `tags` without value: give it a delimiter
        body, start = body + " =", len(body) + 2
    unwanted = _casefolded(remove)
    while True:
        spans = [span for span in _item_spans(body, start)
                 if unescape(body[span[0]:span[1]]).casefold() in unwanted]
        if not spans:
            break
        body = _remove_item(body, start, spans[-1])
    if add:
        value = body[start:]
        separator = "," if ("," in value and ", " not in value) else ", "
        spans = _item_spans(body, start)
        words = [escape_value(word) for word in add]
        if not spans:
            body = body[:start] + " " + separator.join(words) + body[start:]
        else:
            end = spans[-1][1]
            rest = body[end:]
            if rest.strip(_BLANKS).startswith(","):   # a trailing comma: keep the style
                end += rest.index(",") + 1
                blank = "" if separator == "," else " "
                body = body[:end] + "".join(f"{blank}{word}," for word in words) + body[end:]
            else:
                body = body[:end] + "".join(separator + word for word in words) + body[end:]
    return body + line_end


# --------------------------------------------------------------------------------------------
# Tagging and untagging whole files
# --------------------------------------------------------------------------------------------

@dataclasses.dataclass
class IniEdit:
    """New album.ini text and what it now records per picture.

    Attributes:
        text: the new text.
        auto_tags: picture -> what its `auto_tags` holds now (pictures whose keys were written).
        rejected: picture -> keywords the user removed from `tags` (never written again).
        tags: picture -> its own `tags` items as MyPhotoShare will read them (tags route).
        descriptions: picture -> description written.
    """

    text: str
    auto_tags: dict[str, list[str]] = dataclasses.field(default_factory=dict)
    rejected: dict[str, list[str]] = dataclasses.field(default_factory=dict)
    tags: dict[str, list[str]] = dataclasses.field(default_factory=dict)
    descriptions: dict[str, str] = dataclasses.field(default_factory=dict)


def _flags(document: _Document, name: str) -> set[str]:
    return {flag.strip().lower() for flag in (document.value(name, STATE_KEY) or "").split(",")
            if flag.strip()}


def _tool_lines(auto_tags, rejected, flags) -> list[tuple[str, str | None]]:
    """(key, value or None to remove) of the tool's keys."""
    ordered = [flag for flag in STATE_FLAGS if flag in flags]
    if NEW_SECTION in flags:
        ordered = [flag for flag in ordered if flag not in (NEW_TAGS, NEW_DESCRIPTION)]
    return [(AUTO_TAGS_KEY, ",".join(escape_value(word) for word in auto_tags)),
            (REJECTED_KEY, ",".join(escape_value(word) for word in rejected) or None),
            (STATE_KEY, ", ".join(ordered) or None)]


def edit_ini(
    text: str,
    keywords: Mapping[str, Sequence[str]],
    descriptions: Mapping[str, str] | None = None,
    merge_into_tags: bool = False,
    path: Path | str = ALBUM_INI,
) -> IniEdit:
    """Write each picture's keywords (see the module docstring for the keys and their rules).

    Args:
        text: current album.ini content ("" for a new file: a comment header is written).
        keywords: picture name (section) -> keywords, best first (unescaped; cleaned here).
            Names without a section get one appended at the end, in the given order.
        descriptions: picture name -> description, written only where the picture has no
            description (own or from [DEFAULT]) or an empty one.
        merge_into_tags: the tags route: add to each picture's `tags` the keywords it lacks,
            remove the ones this tool added that are no longer chosen, never re-add one the user
            removed; `auto_tags` records what was added. False: `auto_tags` holds every keyword
            (and keywords this tool had put in `tags` are taken out again).
        path: for messages.

    Raises:
        AlbumError: the text cannot be parsed or edited safely.
    """
    document, descriptions = _Document(text, path), descriptions or {}
    edit = IniEdit(text)
    default_raw = document.value("DEFAULT", "tags")
    default_items = split_list(default_raw)
    for name, words in keywords.items():
        words = unique_keywords(clean_keyword(word) for word in words)
        exists = name in document.sections
        flags = _flags(document, name) if exists else set()
        own = document.has(name, "tags")
        current = split_list(document.value(name, "tags")) if own else default_items
        current_folded = _casefolded(current)
        previous = split_list(document.value(name, AUTO_TAGS_KEY)) if IN_TAGS in flags else []
        ours = [word for word in previous if word.casefold() in current_folded] if own else []
        rejected = unique_keywords([word for word in split_list(document.value(name, REJECTED_KEY))
                            if word.casefold() not in current_folded]
                           + [word for word in previous if word.casefold() not in current_folded])
        rejected_folded = _casefolded(rejected)
        chosen = [word for word in words if word.casefold() not in rejected_folded]
        if merge_into_tags:
            remove = [word for word in ours if word.casefold() not in _casefolded(chosen)]
            add = [word for word in chosen if word.casefold() not in current_folded]
            auto_tags = [word for word in ours if word not in remove] + add
            flags.add(IN_TAGS)
        else:
            remove, add, auto_tags = ours, [], chosen
            flags -= {IN_TAGS}
        options: list[tuple[str, str | None]] = []
        if own and (remove or add):
            removed_folded = _casefolded(remove)
            items = [word for word in current if word.casefold() not in removed_folded] + add
            created = NEW_TAGS in flags or NEW_SECTION in flags
            if created and not add and _casefolded(items) == _casefolded(default_items) and \
                    len(items) == len(default_items):
                document.remove(name, "tags")
                flags.discard(NEW_TAGS)
            else:
                document.replace(name, "tags", _edit_list(document.option_text(name, "tags"),
                                                          remove, add))
                edit.tags[name] = items
        elif add:
            value = ("" if default_raw is None else ", ".join(
                item.strip() for item in default_raw.replace("\n", ",").split(",") if item.strip()))
            separator = "," if ("," in value and ", " not in value) else ", "
            options.append(("tags", separator.join(
                ([value] if value else []) + [escape_value(word) for word in add])))
            edit.tags[name] = default_items + add
            flags.add(NEW_TAGS)
        if not merge_into_tags:
            flags.discard(NEW_TAGS)
        description = descriptions.get(name)
        current_description = document.value(name, "description") if document.has(
            name, "description") else document.value("DEFAULT", "description")
        if description and (current_description is None or not current_description.strip()):
            options.append(("description", escape_value(" ".join(description.split()))))
            edit.descriptions[name] = " ".join(description.split())
            flags.add(NEW_DESCRIPTION)
        if not exists:
            flags.add(NEW_SECTION)
        keep_record = not merge_into_tags or auto_tags or rejected or (flags - {IN_TAGS})
        if keep_record:
            options += _tool_lines(auto_tags, rejected, flags)
            edit.auto_tags[name], edit.rejected[name] = auto_tags, rejected
        if not exists:
            if keep_record:
                document.append(name, [(key, value) for key, value in options if value is not None])
            continue
        for key, value in options:
            if value is None:
                document.remove(name, key)
            else:
                document.set(name, key, value)
        if not keep_record:
            for key in TOOL_KEYS:
                document.remove(name, key)
    edit.text = document.text()
    return edit


def update_ini_text(
    text: str,
    keywords: Mapping[str, Sequence[str]],
    descriptions: Mapping[str, str] | None = None,
    merge_into_tags: bool = False,
    path: Path | str = ALBUM_INI,
) -> str:
    """`edit_ini(...).text`: album.ini with the keywords written, every other byte kept."""
    return edit_ini(text, keywords, descriptions, merge_into_tags, path).text


def untag_ini_text(text: str, path: Path | str = ALBUM_INI) -> str | None:
    """Remove what this tool wrote: its keywords from `tags`, its keys, the sections, `tags` keys
    and descriptions it created (a created section the user has added keys to stays, without
    ours). Tagging then untagging gives the original text back, byte for byte.

    Returns:
        The new text, or None when the file only holds what this tool created (delete it).

    Raises:
        AlbumError: the text cannot be parsed or edited safely.
    """
    if not text:
        return text
    document = _Document(text, path)
    default_items = split_list(document.value("DEFAULT", "tags"))
    for name, section in document.sections.items():
        if name in RESERVED_SECTIONS or not any(document.has(name, key) for key in TOOL_KEYS):
            continue
        flags = _flags(document, name)
        created = NEW_SECTION in flags
        if IN_TAGS in flags and document.has(name, "tags"):
            ours = split_list(document.value(name, AUTO_TAGS_KEY))
            left = [word for word in split_list(document.value(name, "tags"))
                    if word.casefold() not in _casefolded(ours)]
            if (created or NEW_TAGS in flags) and [w.casefold() for w in left] == [
                    w.casefold() for w in default_items]:
                document.remove(name, "tags")
            elif ours:
                document.replace(name, "tags", _edit_list(document.option_text(name, "tags"),
                                                          ours, []))
        for key in TOOL_KEYS:
            document.remove(name, key)
        if created or NEW_DESCRIPTION in flags:
            document.remove(name, "description")
        if created and set(section.options) <= section.removed:
            document.remove_header(name)
    new_text = document.text()
    return None if new_text == NEW_FILE_HEADER.replace("\n", document.newline) else new_text


def check_written(text: str, edit: IniEdit, path: Path | str = ALBUM_INI) -> None:
    """Read `text` back with MyPhotoShare's parser and check every value written.

    Raises:
        AlbumError: it does not parse, or a value reads back differently.
    """
    config = parse_like_myphotoshare(text, path)
    expected = [(name, AUTO_TAGS_KEY, ",".join(words)) for name, words in edit.auto_tags.items()]
    expected += [(name, "tags", words) for name, words in edit.tags.items()]
    for name, key, value in expected:
        try:
            found = config.get(name, key)
        except configparser.Error as error:
            raise AlbumError(f"{path}: [{name}] {key} does not read back ({error}); "
                             "nothing was written") from None
        if key == "tags":
            found = [item.strip() for item in found.replace("\n", ",").split(",") if item.strip()]
        if found != value:
            raise AlbumError(f"{path}: [{name}] {key} reads back as {found!r}, expected "
                             f"{value!r}; nothing was written")


def unified_diff(old: str, new: str, path: Path | str = ALBUM_INI) -> str:
    """`difflib` unified diff of two album.ini texts ("" when equal)."""
    name = str(path)
    return "".join(difflib.unified_diff(
        old.splitlines(keepends=True), new.splitlines(keepends=True),
        fromfile=f"{name} (now)", tofile=f"{name} (tagged)"))
