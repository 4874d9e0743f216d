"""OLE compound files made byte by byte, as Office 97-2003, Outlook and password-protected Office
2007+ files are: the directory of streams that kb reads to name them (checked against olefile)."""

from __future__ import annotations

import struct
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime

FREE, END, FATSECT, DIFSECT, NOSTREAM = 0xFFFFFFFF, 0xFFFFFFFE, 0xFFFFFFFD, 0xFFFFFFFC, 0xFFFFFFFF


def make_ole(names: list[str], data_sectors: int = 0) -> bytes:
    """A small OLE compound file (512-byte sectors) whose root holds `names` (storages where a name
    ends in "/"), the first stream `data_sectors` sectors long: enough of the format that readers
    that walk its directory (olefile, Office) open it; past 109 FAT sectors it needs the DIFAT."""
    entries = [("Root Entry", 5)] + [(n.rstrip("/"), 1 if n.endswith("/") else 2) for n in names]
    dir_count = -(-len(entries) // 4)
    fat_count = difat_count = 0
    while True:  # FAT and DIFAT sectors count themselves
        total = fat_count + difat_count + data_sectors + dir_count
        need_fat = -(-total // 128)
        need_difat = -(-max(0, need_fat - 109) // 127)
        if (need_fat, difat_count) == (fat_count, need_difat):
            break
        fat_count, difat_count = need_fat, need_difat
    first_data = fat_count + difat_count
    first_dir = first_data + data_sectors
    fat = [FATSECT] * fat_count + [DIFSECT] * difat_count
    for start, count in ((first_data, data_sectors), (first_dir, dir_count)):
        fat += [start + i + 1 for i in range(count - 1)] + ([END] if count else [])
    fat += [FREE] * (fat_count * 128 - len(fat))
    fat_ids = list(range(fat_count))
    difat_sectors = []
    rest = fat_ids[109:]
    for i in range(difat_count):
        chunk = rest[i * 127:(i + 1) * 127]
        nxt = fat_count + i + 1 if i + 1 < difat_count else END
        difat_sectors.append(struct.pack("<128I", *(chunk + [FREE] * (127 - len(chunk)) + [nxt])))
    header = struct.pack("<8s16sHHHHH6sIIIIIIIII", b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", bytes(16), 0x3E, 3,
                         0xFFFE, 9, 6, bytes(6), 0, fat_count, first_dir, 0, 4096, END, 0,
                         fat_count if difat_count else END, difat_count)
    header += struct.pack("<109I", *(fat_ids[:109] + [FREE] * (109 - min(109, fat_count))))
    directory = b""
    for i, (name, kind) in enumerate(entries):
        encoded = name.encode("utf-16-le") + b"\x00\x00"
        child = 1 if kind == 5 and len(entries) > 1 else NOSTREAM
        right = i + 1 if 0 < i < len(entries) - 1 else NOSTREAM
        start, size = (first_data, data_sectors * 512) if i == 1 and data_sectors else (END, 0)
        directory += struct.pack("<64sHBBIII16sIQQIQ", encoded, len(encoded), kind, 1, NOSTREAM, right, child,
                                 bytes(16), 0, 0, 0, start, size)
    directory += (b"\x00" * 64 + struct.pack("<HBBIII", 0, 0, 0, NOSTREAM, NOSTREAM, NOSTREAM)).ljust(128, b"\x00") \
        * (dir_count * 4 - len(entries))
    body = struct.pack(f"<{len(fat)}I", *fat) + b"".join(difat_sectors) + b"\x00" * (512 * data_sectors) + directory
    return header + body


MINI_CUTOFF, MINI = 4096, 64


def make_compound(tree: dict) -> bytes:
    """A complete OLE compound file (version 3, 512-byte sectors) from a tree of storages (dicts)
    and streams (bytes): streams under 4,096 bytes in the mini stream, as the format requires, the
    rest in sectors of their own; each storage's children chained as right siblings. Enough for
    olefile, and so extract-msg, to read every stream back."""
    entries: list[list] = []  # [name, type, child, right, start, size, data]

    def add(name: str, node) -> int:
        index = len(entries)
        entries.append([name, 2 if isinstance(node, bytes) else (5 if index == 0 else 1), NOSTREAM, NOSTREAM,
                        END, len(node) if isinstance(node, bytes) else 0, node if isinstance(node, bytes) else None])
        if isinstance(node, dict):
            kids = [add(k, v) for k, v in node.items()]
            if kids:
                entries[index][2] = kids[0]
                for left, right in zip(kids, kids[1:]):
                    entries[left][3] = right
        return index

    add("Root Entry", tree)
    mini, minifat, big = b"", [], []  # the mini stream, its FAT, (entry, data) of large streams
    for entry in entries:
        data = entry[6]
        if data is None or not data:
            continue
        if len(data) < MINI_CUTOFF:
            first = len(mini) // MINI
            count = -(-len(data) // MINI)
            minifat += [first + i + 1 for i in range(count - 1)] + [END]
            mini += data.ljust(count * MINI, b"\x00")
            entry[4] = first
        else:
            big.append(entry)
    sectors = lambda n: -(-n // 512)  # noqa: E731
    dir_count = sectors(len(entries) * 128)
    minifat_count = sectors(len(minifat) * 4)
    mini_count = sectors(len(mini))
    big_counts = [sectors(len(e[6])) for e in big]
    body = dir_count + minifat_count + mini_count + sum(big_counts)
    fat_count = 1
    while fat_count * 128 < body + fat_count:
        fat_count += 1
    assert fat_count <= 109, "a file this large needs the DIFAT"
    fat = [FATSECT] * fat_count
    chains: list[tuple[int, int]] = []
    for count in (dir_count, minifat_count, mini_count, *big_counts):
        start = len(fat)
        fat += [start + i + 1 for i in range(count - 1)] + ([END] if count else [])
        chains.append((start if count else END, count))
    fat += [FREE] * (fat_count * 128 - len(fat))
    (first_dir, _), (first_minifat, _), (first_mini, _), *big_starts = chains
    entries[0][4], entries[0][5] = (first_mini, len(mini)) if mini else (END, 0)
    for entry, (start, _) in zip(big, big_starts):
        entry[4] = start
    header = struct.pack("<8s16sHHHHH6sIIIIIIIII", b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", bytes(16), 0x3E, 3,
                         0xFFFE, 9, 6, bytes(6), 0, fat_count, first_dir, 0, MINI_CUTOFF,
                         first_minifat if minifat else END, minifat_count, END, 0)
    header += struct.pack("<109I", *(list(range(fat_count)) + [FREE] * (109 - fat_count)))
    directory = b""
    for name, kind, child, right, start, size, _ in entries:
        encoded = name.encode("utf-16-le") + b"\x00\x00"
        directory += struct.pack("<64sHBBIII16sIQQIQ", encoded, len(encoded), kind, 1, NOSTREAM, right, child,
                                 bytes(16), 0, 0, 0, start, size)
    pad = lambda b, n: b.ljust(n * 512, b"\x00")  # noqa: E731
    parts = [struct.pack(f"<{len(fat)}I", *fat), pad(directory, dir_count),
             pad(struct.pack(f"<{len(minifat)}I", *minifat), minifat_count) if minifat else b"", pad(mini, mini_count)]
    parts += [pad(e[6], c) for e, c in zip(big, big_counts)]
    return header + b"".join(parts)


def _unicode(tag: str, text: str) -> tuple[str, bytes]:
    return f"__substg1.0_{tag}001F", text.encode("utf-16-le")


def _properties(fixed: list[tuple[int, int, bytes]], header: bytes, variable: dict[str, bytes]) -> bytes:
    """A __properties_version1.0 stream: its header, then 16 bytes a property (tag, flags, value);
    variable-size ones (strings, binary) give their size, their data being streams of their own."""
    out = header
    for prop, kind, value in fixed:
        out += struct.pack("<II", (prop << 16) | kind, 6) + value.ljust(8, b"\x00")
    for name, data in variable.items():
        tag = int(name[-8:], 16)
        out += struct.pack("<IIII", tag, 6, len(data) + (2 if tag & 0xFFFF == 0x1F else 0), 0)
    return out


def make_msg(subject: str, body: str, sender: str = "Asha Patel <asha@example.org>",
             date: str = "Tue, 14 Mar 2023 09:30:00 +0000", attachments: list[tuple[str, bytes]] = ()) -> bytes:
    """An Outlook message (.msg) as Outlook saves a received one: its class, subject, plain body and
    the message's internet headers (which name the sender and the date), and each attachment (file
    name, bytes) in a storage of its own, attached by value."""
    headers = f"From: {sender}\r\nTo: partners@example.org\r\nSubject: {subject}\r\nDate: {date}\r\n\r\n"
    top = dict([_unicode("001A", "IPM.Note"), _unicode("0037", subject), _unicode("1000", body),
                _unicode("007D", headers)])
    tree: dict = {"__nameid_version1.0": {"__substg1.0_00020102": b"", "__substg1.0_00030102": b"",
                                          "__substg1.0_00040102": b""}}
    tree.update(top)
    for n, (name, data) in enumerate(attachments):
        streams = dict([_unicode("3707", name), _unicode("3704", name[:12])])
        streams["__substg1.0_37010102"] = data
        streams["__properties_version1.0"] = _properties([(0x3705, 0x0003, struct.pack("<I", 1))], bytes(8), streams)
        tree[f"__attach_version1.0_#{n:08X}"] = streams
    header = bytes(8) + struct.pack("<IIII", 0, len(attachments), 0, len(attachments)) + bytes(8)
    sent = parsedate_to_datetime(date)
    filetime = int((sent - datetime(1601, 1, 1, tzinfo=timezone.utc)).total_seconds() * 10_000_000)
    fixed = [(0x0E07, 0x0003, struct.pack("<I", 1)),  # message flags: read, not unsent
             (0x0039, 0x0040, struct.pack("<Q", filetime))]  # client submit time
    tree["__properties_version1.0"] = _properties(fixed, header, top)
    return make_compound(tree)
