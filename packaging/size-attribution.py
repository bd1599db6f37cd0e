#!/usr/bin/env python3
"""Where the bytes of an executable come from: reads a GNU ld link map (`-Wl,-Map=FILE`) and
prints, per archive or object, the bytes it contributes to the sections that stay in a stripped
file (.text, .rodata, .data.rel.ro, .eh_frame, ...), largest first. .rela.dyn (the relocations a
static-pie applies to itself at start) and .eh_frame_hdr are made by the linker, so the map names
no input for them; they are printed on their own lines from the output section sizes.

    python3 packaging/size-attribution.py build-sc/crunch-secrets.map [--sections]

--sections adds a column per output section. Used to write down README's attribution; the
packaging test prints it next to the size figures.
"""

from __future__ import annotations

import argparse
import collections
import re
import sys
from pathlib import Path

# Sections a stripped executable keeps in its file (.bss takes no file space; .tbss neither).
KEPT = (".text", ".rodata", ".data.rel.ro", ".eh_frame", ".gcc_except_table", ".data", ".init_array",
        ".fini_array", ".relr.dyn", ".got", "__libc_", ".plt", ".tdata", ".init", ".fini", ".note")
SKIP = (".bss", ".tbss", ".rela", ".eh_frame_hdr", ".debug", ".comment", ".stab", ".gnu.build.attributes")

OUT_RE = re.compile(r"^(\S+)\s+0x([0-9a-f]+)\s+0x([0-9a-f]+)")
IN_RE = re.compile(r"^ (\S+)\s+0x([0-9a-f]+)\s+0x([0-9a-f]+)\s+(.+)$")
IN_NAME_ONLY = re.compile(r"^ (\S+)$")
IN_CONT = re.compile(r"^\s+0x([0-9a-f]+)\s+0x([0-9a-f]+)\s+(.+)$")


def owner(path: str) -> str:
    """The archive a member came from (libcrypto.a), or the object file's own name."""
    m = re.match(r"(.*?)\((.*)\)$", path)
    if m:
        return Path(m.group(1)).name
    name = Path(path).name
    if name.endswith(".o") and (".p/" in path or ".ltrans" in name):
        return "crunch-secrets (our code, LTO)" if ".ltrans" in name else "crunch-secrets (our code)"
    return name


def parse(map_path: Path):
    per = collections.defaultdict(lambda: collections.Counter())
    out_sizes: dict[str, int] = {}
    lines = map_path.read_text(errors="replace").splitlines()
    try:
        start = lines.index("Linker script and memory map")
    except ValueError:
        sys.exit(f"{map_path}: not a GNU ld map (no 'Linker script and memory map' line)")
    current = None
    pending = None
    for line in lines[start + 1:]:
        m = OUT_RE.match(line)
        if m:
            current = m.group(1)
            out_sizes[current] = int(m.group(3), 16)
            pending = None
            continue
        if line and not line[0].isspace():
            # An output section whose address is on the next line.
            current = line.split()[0]
            pending = None
            continue
        m = IN_RE.match(line)
        if m and m.group(1) != "*fill*" and not m.group(4).startswith("0x"):
            add(per, current, m.group(4), int(m.group(3), 16))
            pending = None
            continue
        m = IN_NAME_ONLY.match(line)
        if m:
            pending = m.group(1)
            continue
        m = IN_CONT.match(line)
        if m and pending is not None:
            add(per, current, m.group(3), int(m.group(2), 16))
            pending = None
            continue
        if current and current.startswith(".text") is False and line.startswith(" *(") is False:
            pass
    return per, out_sizes


def add(per, section, path, size):
    if section is None or size == 0 or section.startswith(SKIP):
        return
    if path.startswith(("load address", "linker stubs")):
        return
    per[owner(path.strip())][section] += size


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("map", type=Path)
    ap.add_argument("--sections", action="store_true", help="a column per output section")
    ap.add_argument("--top", type=int, default=15)
    args = ap.parse_args()
    per, out_sizes = parse(args.map)
    totals = {k: sum(v.values()) for k, v in per.items()}
    secs = [".text", ".rodata", ".data.rel.ro", ".eh_frame", ".gcc_except_table", ".data"]
    head = f"{'bytes':>10}  {'source':<28}"
    if args.sections:
        head += "".join(f"{s:>14}" for s in secs)
    print(head)
    ranked = sorted(totals.items(), key=lambda kv: -kv[1])
    rest = collections.Counter()
    for i, (name, total) in enumerate(ranked):
        if i >= args.top:
            rest.update(per[name])
            continue
        row = f"{total:>10}  {name:<28}"
        if args.sections:
            row += "".join(f"{per[name].get(s, 0):>14}" for s in secs)
        print(row)
    if rest:
        row = f"{sum(rest.values()):>10}  {'(the rest)':<28}"
        if args.sections:
            row += "".join(f"{rest.get(s, 0):>14}" for s in secs)
        print(row)
    for s in (".rela.dyn", ".relr.dyn", ".eh_frame_hdr"):
        if s in out_sizes:
            print(f"{out_sizes[s]:>10}  {s + ' (made by the linker)':<28}")
    print(f"{sum(totals.values()) + sum(out_sizes.get(s, 0) for s in ('.rela.dyn', '.relr.dyn', '.eh_frame_hdr')):>10}  total")


if __name__ == "__main__":
    main()
