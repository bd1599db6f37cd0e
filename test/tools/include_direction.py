#!/usr/bin/env python3
"""Fails when a source file includes a layer it must not depend on (ARCHITECTURE.md, "Layers").

Usage: include_direction.py [REPO_ROOT]

The layers are the directories under src/ and include/crunchsecrets/. An arrow in the layer
picture is "may include", so each layer lists what it may include besides itself:

    cli ──▶ core ──▶ vault ──▶ util
              ├──▶ supervise ──▶ util
              └──▶ arvados ──▶ vault, util

Includes are recognised in both forms ("..." and <...>), by their crunchsecrets/<layer>/
prefix or, for any other path, by the file it resolves to (beside the including file, then
under include/, include/crunchsecrets/ and src/). Issue 6 added the check: the
layer picture had stopped being true of the code once (vault included core/error.hpp).
"""
import pathlib
import re
import sys

ALLOWED = {
    "util": set(),
    "vault": {"util"},
    "supervise": {"util"},
    "arvados": {"vault", "util"},
    "core": {"vault", "supervise", "arvados", "util"},
    "cli": {"core", "vault", "supervise", "arvados", "util"},
}
INCLUDE = re.compile(r'^\s*#\s*include\s*[<"]([^>"]+)[>"]', re.M)


def layer_of_path(path, root):
    """The layer a file or directory under src/ or include/crunchsecrets/ belongs to, or None."""
    try:
        rel = path.resolve().relative_to(root.resolve()).parts
    except ValueError:
        return None
    if len(rel) >= 2 and rel[0] == "src":
        return rel[1] if rel[1] in ALLOWED else None
    if len(rel) >= 3 and rel[:2] == ("include", "crunchsecrets"):
        return rel[2] if rel[2] in ALLOWED else None
    return None


def layer_of_include(name, source, root):
    """The layer an include names, or None for a system header or a file outside the layers."""
    parts = pathlib.PurePosixPath(name).parts
    if len(parts) >= 2 and parts[0] == "crunchsecrets" and parts[1] in ALLOWED:
        return parts[1]
    # A quoted include is looked up beside the file first, then in the include directories.
    for base in (source.parent, root / "include", root / "include" / "crunchsecrets", root / "src"):
        candidate = base / name
        if candidate.is_file():
            return layer_of_path(candidate, root)
    return None


def violations(root):
    for top in (root / "src", root / "include" / "crunchsecrets"):
        for source in sorted(top.rglob("*")):
            if source.suffix not in (".cpp", ".hpp", ".h", ".cc") or not source.is_file():
                continue
            layer = layer_of_path(source, root)
            if layer is None:
                continue
            text = source.read_text(encoding="utf-8", errors="replace")
            for match in INCLUDE.finditer(text):
                target = layer_of_include(match.group(1), source, root)
                if target is None or target == layer or target in ALLOWED[layer]:
                    continue
                line = text.count("\n", 0, match.start()) + 1
                yield (f"{source.relative_to(root)}:{line}: {layer} includes "
                       f"{match.group(1)} ({target}); {layer} may include only "
                       f"{', '.join(sorted(ALLOWED[layer] | {layer}))} (ARCHITECTURE.md, "
                       f"\"Layers\")")


def main():
    root = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else ".")
    if not (root / "src").is_dir():
        print(f"include_direction.py: {root}/src is not a directory", file=sys.stderr)
        return 2
    found = list(violations(root))
    for v in found:
        print(v)
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
