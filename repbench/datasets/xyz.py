"""Pieces of the (extended) XYZ layout shared by the readers: comment-line key=value pairs, the columns an
extxyz ``Properties`` field declares, numbers with line-naming errors, and a layout check that names the
first broken line of a file (ASE's own messages carry no line number).

The layout: per structure, a line holding only the atom count ``n``, a comment line, then ``n`` atom lines
``element x y z [more columns]`` (extxyz: the columns ``Properties=`` declares).
"""

from __future__ import annotations

import re
from pathlib import Path

from ..errors import DataError
from ..structures import atomic_number

_KV = re.compile(r"""([A-Za-z_][\w\-]*)\s*=\s*("[^"]*"|'[^']*'|\{[^}]*\}|\S+)""")


def parse_comment(line: str) -> dict[str, str]:
    """``key=value`` pairs of an (extended) XYZ comment line, quotes removed; keys as written."""
    out = {}
    for k, v in _KV.findall(line):
        if v[:1] in "\"'{":
            v = v[1:-1]
        out[k] = v
    return out


def properties_columns(properties: str, where: str) -> tuple[int, int, int]:
    """(species column, first position column, number of columns) from an extxyz ``Properties`` value."""
    parts = properties.split(":")
    if len(parts) % 3:
        raise DataError(f"malformed Properties={properties!r}", where=where,
                        hint="Properties is name:type:count triples, e.g. species:S:1:pos:R:3")
    col, species, pos = 0, -1, -1
    for name, _typ, cnt in zip(parts[::3], parts[1::3], parts[2::3]):
        if name == "species":
            species = col
        elif name == "pos":
            pos = col
        try:
            col += int(cnt)
        except ValueError:
            raise DataError(f"malformed Properties={properties!r}", where=where,
                            hint="Properties is name:type:count triples") from None
    if species < 0 or pos < 0:
        raise DataError(f"Properties={properties!r} lacks species or pos", where=where,
                        hint="structures need species:S:1 and pos:R:3 columns")
    return species, pos, col


def parse_float(value: str, what: str, where: str) -> float:
    try:
        return float(value)
    except ValueError:
        raise DataError(f"{what} = {value!r} is not a number", where=where, hint="fix the value") from None


def check_counts(text: str, path: Path) -> None:
    """Check that every structure's atom count fits in the file before a parser loops over it.

    A count larger than the lines that follow (``999999999999`` in a header) makes ASE loop or allocate
    for as many atoms; here it raises :class:`DataError` naming the line (through :func:`check_layout`).
    One pass over the structures' first lines: O(number of structures).  Lines that are not a count are
    left to the parser (and :func:`check_layout`).
    """
    lines = text.splitlines()
    n_lines = len(lines)
    i = 0
    while i < n_lines:
        if not lines[i].strip():
            i += 1
            continue
        head = lines[i].split()
        if len(head) != 1:
            return
        try:
            n = int(head[0])
        except ValueError:
            return
        if n < 0 or i + 2 + n > n_lines:
            check_layout(path, text)  # names the first missing or broken line
            raise DataError(f"a structure declares {n} atoms but {max(n_lines - i - 2, 0)} lines follow its "
                            "comment line", where=f"{path}:{i + 1}",
                            hint="fix the atom count, or the file was cut short")
        i += 2 + n


def check_layout(path: Path, text: str | None = None) -> None:
    """Raise :class:`DataError` naming the first line of ``path`` that breaks the (extended) XYZ layout.

    Returns quietly when the file is not text or every structure looks right (the problem, if any, is one
    this scan does not know); meant for when ASE has failed to read the file.  ``text``: the file's text
    if already read.
    """
    if text is None:
        from . import read_text

        try:
            text = read_text(path, "file")
        except DataError:
            return
    if "\x00" in text or "\ufffd" in text:  # not a text file: the caller's message says enough
        return
    lines = text.splitlines()
    prev: tuple[int, int] | None = None  # (line, atom count) of the previous structure
    i = 0
    while i < len(lines):
        if not lines[i].strip():  # blank lines between structures or at the end
            i += 1
            continue
        head = lines[i].split()
        where = f"{path}:{i + 1}"
        if len(head) != 1 or not head[0].isdigit():
            hint = "each structure starts with a line holding only its atom count, then a comment line"
            if prev is not None:
                hint = (f"the structure at line {prev[0]} declares {prev[1]} atoms; if this line is one of its "
                        "atoms, correct that count")
            raise DataError(f"expected the atom count of a structure, found {lines[i].strip()[:60]!r}",
                            where=where, hint=hint)
        n = int(head[0])
        prev = (i + 1, n)
        if i + 1 >= len(lines):
            raise DataError(f"structure of {n} atoms has no comment line", where=where,
                            hint="the file was cut short")
        kv = parse_comment(lines[i + 1])
        sp, pos, _ = (properties_columns(kv["Properties"], f"{path}:{i + 2}") if "Properties" in kv
                      else (0, 1, 4))
        for j in range(i + 2, i + 2 + n):
            where = f"{path}:{j + 1}"
            if j >= len(lines) or not lines[j].strip():
                raise DataError(f"structure starting at line {i + 1} should have {n} atom lines, found "
                                f"{j - i - 2}", where=where,
                                hint=f"fix the atom count on line {i + 1} or add the missing atoms")
            cols = lines[j].split()
            if len(cols) < max(sp + 1, pos + 3):
                raise DataError(f"atom line has {len(cols)} columns, needs an element and x y z: "
                                f"{lines[j].strip()[:60]!r}", where=where,
                                hint="each atom line is: element x y z [more columns]")
            atomic_number(cols[sp], where=where)
            for c in cols[pos:pos + 3]:
                parse_float(c.replace("*^", "e"), "coordinate", where)
        i += 2 + n
