"""The dynamic symbols of an ELF object, read as the loader reads them.

The dynamic loader never looks at section headers: it finds ``PT_DYNAMIC`` through
the program headers, then the symbol table (``DT_SYMTAB``), its strings
(``DT_STRTAB``/``DT_STRSZ``) and the symbol count from the hash tables
(``DT_HASH``'s chain count, or the last chain of ``DT_GNU_HASH``). Reading the
same way means an object whose section headers were damaged (so section-based
readers give up) is still classified, and an object whose dynamic symbols cannot
be read this way is one the loader could not link either: the audit refuses it.

Every offset and count is checked against the file before it is used; nothing is
read that the file does not hold, and the symbol count is capped.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import IO

from ..limits import ArchiveLimits

__all__ = ["DynamicSymbols", "ElfUnreadable", "MAX_DYNAMIC_SYMBOLS", "read_dynamic_symbols"]

MAX_DYNAMIC_SYMBOLS = ArchiveLimits().max_dynamic_symbols
"""More dynamic symbols than this and the object is refused (``limits.ArchiveLimits``)."""

_ET_DYN = 3
_PT_LOAD, _PT_DYNAMIC = 1, 2
_DT_NULL, _DT_HASH, _DT_STRTAB, _DT_SYMTAB, _DT_STRSZ, _DT_SYMENT = 0, 4, 5, 6, 10, 11
_DT_GNU_HASH = 0x6FFFFEF5
_DT_NEEDED = 1
_DT_VERNEED, _DT_VERNEEDNUM = 0x6FFFFFFE, 0x6FFFFFFF
_SHN_UNDEF = 0


class ElfUnreadable(Exception):
    """The object's dynamic symbols cannot be read through its program headers."""


@dataclass(frozen=True)
class DynamicSymbols:
    shared_object: bool
    """``e_type`` is ``ET_DYN`` (a shared library, an extension module or a PIE)."""
    defined: frozenset[str]
    undefined: frozenset[str]
    needed: tuple[str, ...] = ()
    """``DT_NEEDED`` libraries, in order."""
    version_needs: tuple[str, ...] = ()
    """Version names required from other objects (``DT_VERNEED``: ``GLIBC_2.34``...)."""


class _Image:
    def __init__(self, stream: IO[bytes]) -> None:
        stream.seek(0, 2)
        self.size = stream.tell()
        self.stream = stream

    def read(self, offset: int, length: int, what: str) -> bytes:
        if offset < 0 or length < 0 or offset + length > self.size:
            raise ElfUnreadable(f"{what} lies outside the file")
        self.stream.seek(offset)
        data = self.stream.read(length)
        if len(data) != length:
            raise ElfUnreadable(f"{what} is truncated")
        return data


def read_dynamic_symbols(stream: IO[bytes]) -> DynamicSymbols:
    """The object's dynamic symbols; raises :class:`ElfUnreadable` if a shared object's
    cannot be read. An object without ``PT_DYNAMIC`` that is not a shared object (a
    static executable, a relocatable ``.o``) has none."""
    image = _Image(stream)
    ident = image.read(0, 16, "the ELF identification")
    if ident[:4] != b"\x7fELF" or ident[4] not in (1, 2) or ident[5] not in (1, 2):
        raise ElfUnreadable("not a 32/64-bit little/big-endian ELF file")
    wide, end = ident[4] == 2, "<" if ident[5] == 1 else ">"
    word = "Q" if wide else "I"
    head = image.read(16, 48 if wide else 36, "the ELF header")
    e_type = struct.unpack_from(end + "H", head, 0)[0]
    e_phoff, = struct.unpack_from(end + word, head, 16 if wide else 12)
    e_phentsize, e_phnum = struct.unpack_from(end + "HH", head, 38 if wide else 26)
    shared = e_type == _ET_DYN
    ph_size = 56 if wide else 32
    if e_phnum and e_phentsize < ph_size:
        raise ElfUnreadable(f"program header entries of {e_phentsize} bytes")
    loads: list[tuple[int, int, int]] = []
    dynamic: tuple[int, int] | None = None
    for i in range(e_phnum):
        raw = image.read(e_phoff + i * e_phentsize, ph_size, "a program header")
        if wide:
            p_type, _, p_offset, p_vaddr, _, p_filesz = struct.unpack_from(end + "IIQQQQ", raw)
        else:
            p_type, p_offset, p_vaddr, _, p_filesz = struct.unpack_from(end + "IIIII", raw)
        if p_type == _PT_LOAD:
            loads.append((p_vaddr, p_offset, p_filesz))
        elif p_type == _PT_DYNAMIC:
            if dynamic is not None:
                raise ElfUnreadable("two PT_DYNAMIC program headers")
            dynamic = (p_offset, p_filesz)
    if dynamic is None:
        if shared:
            raise ElfUnreadable("a shared object without a PT_DYNAMIC program header")
        return DynamicSymbols(False, frozenset(), frozenset())

    def at(vaddr: int, length: int, what: str) -> int:
        for start, offset, size in loads:
            if start <= vaddr and vaddr + length <= start + size:
                return offset + (vaddr - start)
        raise ElfUnreadable(f"{what} is not in a loaded segment")

    entry = 16 if wide else 8
    tags: dict[int, int] = {}
    needed_at: list[int] = []
    offset, size = dynamic
    for i in range(min(size // entry, 1 << 16)):
        tag, value = struct.unpack(end + ("qQ" if wide else "iI"),
                                   image.read(offset + i * entry, entry, "a dynamic entry"))
        if tag == _DT_NULL:
            break
        if tag == _DT_NEEDED:
            needed_at.append(value)
        tags.setdefault(tag, value)
    if _DT_SYMTAB not in tags or _DT_STRTAB not in tags:
        raise ElfUnreadable("no DT_SYMTAB/DT_STRTAB in the dynamic section")
    sym_size = tags.get(_DT_SYMENT, 24 if wide else 16)
    if sym_size < (24 if wide else 16):
        raise ElfUnreadable(f"DT_SYMENT of {sym_size} bytes")
    count = _symbol_count(image, tags, at, end, wide)
    strsz = tags.get(_DT_STRSZ)
    if strsz is None or strsz > 64 * MAX_DYNAMIC_SYMBOLS:
        raise ElfUnreadable("no DT_STRSZ, or an oversized one")
    strtab = at(tags[_DT_STRTAB], strsz, "DT_STRTAB")
    strings = image.read(strtab, strsz, "the dynamic string table")
    def string(at_offset: int) -> str:
        if at_offset >= len(strings):
            raise ElfUnreadable("a name outside the dynamic string table")
        stop = strings.find(b"\0", at_offset)
        return strings[at_offset:stop if stop >= 0 else len(strings)].decode("utf-8", "replace")

    needed = tuple(string(n) for n in needed_at)
    version_needs = _version_needs(image, tags, at, end, string)
    symtab = at(tags[_DT_SYMTAB], count * sym_size, "DT_SYMTAB")
    table = image.read(symtab, count * sym_size, "the dynamic symbol table")
    defined, undefined = set(), set()
    for i in range(count):
        if wide:
            st_name, _, _, st_shndx = struct.unpack_from(end + "IBBH", table, i * sym_size)
        else:
            st_name, _, _, _, _, st_shndx = struct.unpack_from(end + "IIIBBH", table,
                                                               i * sym_size)
        if st_name == 0:
            continue
        if st_name >= len(strings):
            raise ElfUnreadable("a symbol name outside the string table")
        (undefined if st_shndx == _SHN_UNDEF else defined).add(string(st_name))
    return DynamicSymbols(shared, frozenset(defined), frozenset(undefined), needed,
                          version_needs)


def _version_needs(image: _Image, tags: dict[int, int], at, end: str, string) -> tuple[str, ...]:
    """The names in ``DT_VERNEED`` (``DT_VERNEEDNUM`` entries, each with its auxiliaries)."""
    if _DT_VERNEED not in tags:
        return ()
    names: list[str] = []
    here = at(tags[_DT_VERNEED], 16, "DT_VERNEED")
    for _ in range(min(tags.get(_DT_VERNEEDNUM, 0), 1 << 12)):
        _, count, _, aux, following = struct.unpack(end + "HHIII",
                                                    image.read(here, 16, "a Verneed entry"))
        place = here + aux
        for _ in range(min(count, 1 << 12)):
            _, _, _, name, next_aux = struct.unpack(end + "IHHII",
                                                    image.read(place, 16, "a Vernaux entry"))
            names.append(string(name))
            if not next_aux:
                break
            place += next_aux
        if not following:
            break
        here += following
    return tuple(names)


def _symbol_count(image: _Image, tags: dict[int, int], at, end: str, wide: bool) -> int:
    """How many dynamic symbols there are: the most either hash table accounts for."""
    counts = []
    if _DT_HASH in tags:
        _, nchain = struct.unpack(end + "II", image.read(at(tags[_DT_HASH], 8, "DT_HASH"), 8,
                                                        "DT_HASH"))
        counts.append(nchain)
    if _DT_GNU_HASH in tags:
        base = at(tags[_DT_GNU_HASH], 16, "DT_GNU_HASH")
        nbuckets, symoffset, bloom_size, _ = struct.unpack(end + "4I",
                                                           image.read(base, 16, "DT_GNU_HASH"))
        if nbuckets > MAX_DYNAMIC_SYMBOLS or bloom_size > MAX_DYNAMIC_SYMBOLS:
            raise ElfUnreadable("an oversized DT_GNU_HASH table")
        buckets_at = base + 16 + bloom_size * (8 if wide else 4)
        buckets = struct.unpack(f"{end}{nbuckets}I",
                                image.read(buckets_at, 4 * nbuckets, "DT_GNU_HASH buckets"))
        last = max(buckets, default=0)
        if last < symoffset:
            counts.append(symoffset)
        else:
            chains_at = buckets_at + 4 * nbuckets
            index = last
            while True:
                if index - symoffset > MAX_DYNAMIC_SYMBOLS:
                    raise ElfUnreadable("a DT_GNU_HASH chain that does not end")
                value, = struct.unpack(end + "I", image.read(
                    chains_at + 4 * (index - symoffset), 4, "a DT_GNU_HASH chain"))
                if value & 1:
                    break
                index += 1
            counts.append(index + 1)
    if not counts:
        raise ElfUnreadable("no DT_HASH or DT_GNU_HASH: the symbol count is unknown")
    count = max(counts)
    if count > MAX_DYNAMIC_SYMBOLS:
        raise ElfUnreadable(f"{count} dynamic symbols; the cap is {MAX_DYNAMIC_SYMBOLS}")
    return count
