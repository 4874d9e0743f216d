"""OLE compound files made byte by byte, as Office 97-2003, Outlook and password-protected Office
2007+ files are: the directory of streams that kb reads to name them (checked against olefile)."""

from __future__ import annotations

import struct

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
