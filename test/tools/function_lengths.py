#!/usr/bin/env python3
"""Fails when a function in the given C++ sources is longer than the limit (default 80 lines).

Usage: function_lengths.py [--max N] [--list] [--allow FILE:FUNCTION]... FILE_OR_DIR...

A function is a brace block opened directly inside a namespace, class, struct or the file
scope whose header (the text since the previous ';', '{' or '}') contains a parameter list.
Its length counts the lines from the header's last line to the closing brace. Comments,
string and character literals are blanked first so their braces do not count. Issue 6 set the
limit: long functions are split along the lines they already have.
"""
import argparse
import pathlib
import re
import sys

SCOPE = re.compile(r"\b(namespace|class|struct|union|enum)\b[^()]*$")


def blank_literals(text):
    """Replaces comments and string/char literal contents with spaces, keeping newlines."""
    out = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if text.startswith("//", i):
            j = text.find("\n", i)
            j = n if j < 0 else j
            out.append(" " * (j - i))
            i = j
        elif text.startswith("/*", i):
            j = text.find("*/", i + 2)
            j = n if j < 0 else j + 2
            out.append(re.sub(r"[^\n]", " ", text[i:j]))
            i = j
        elif text.startswith('R"', i):
            m = re.match(r'R"([^(]*)\(', text[i:])
            end = text.find(")" + m.group(1) + '"', i) if m else -1
            j = n if end < 0 else end + len(m.group(1)) + 2
            out.append(re.sub(r"[^\n]", " ", text[i:j]))
            i = j
        elif c in "\"'":
            j = i + 1
            while j < n and text[j] != c:
                j += 2 if text[j] == "\\" else 1
            out.append(c + " " * (j - i - 1) + c)
            i = j + 1
        else:
            out.append(c)
            i += 1
    return "".join(out)


def functions(path):
    """Yields (name, first_line, length) for each function defined in `path`."""
    text = blank_literals(path.read_text())
    stack = []  # for each open brace: "scope", "function" or "block"
    header_start = 0
    line = 1
    starts = {}
    for i, c in enumerate(text):
        if c == "\n":
            line += 1
        elif c == "{":
            header = text[header_start:i]
            inside_function = any(kind == "function" for kind, _ in stack)
            if inside_function:
                kind = "block"
            elif SCOPE.search(" ".join(header.split())):
                kind = "scope"
            elif "(" in header and ")" in header and not header.rstrip().endswith("="):
                kind = "function"
            else:
                kind = "block"
            stack.append((kind, line))
            if kind == "function":
                name = re.findall(r"([~\w:]+)\s*\(", header)
                starts[len(stack)] = (name[0] if name else "?", line)
            header_start = i + 1
        elif c == "}":
            if stack:
                kind, _ = stack.pop()
                if kind == "function":
                    name, first = starts.pop(len(stack) + 1)
                    yield name, first, line - first + 1
            header_start = i + 1
        elif c == ";" and not any(kind == "function" for kind, _ in stack):
            header_start = i + 1


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max", type=int, default=80)
    parser.add_argument("--list", action="store_true", help="print every function's length")
    parser.add_argument("--allow", action="append", default=[],
                        help="FILE:FUNCTION allowed to be longer (reported); an entry that is not "
                        "too long, or names no function, is an error")
    parser.add_argument("paths", nargs="+")
    args = parser.parse_args()
    files = []
    for p in map(pathlib.Path, args.paths):
        files += sorted(p.rglob("*.cpp")) + sorted(p.rglob("*.hpp")) if p.is_dir() else [p]
    too_long = []
    seen_long = set()
    for f in files:
        for name, first, length in functions(f):
            if args.list:
                print(f"{length:4d} {f}:{first} {name}")
            if length > args.max:
                message = f"{f}:{first}: {name} is {length} lines (at most {args.max})"
                if f"{f}:{name}" in args.allow:
                    seen_long.add(f"{f}:{name}")
                    print(f"allowed (--allow): {message}", file=sys.stderr)
                else:
                    too_long.append(message)
    if not files:
        print("function_lengths.py: no C++ files found", file=sys.stderr)
        return 2
    for stale in sorted(set(args.allow) - seen_long):
        too_long.append(f"--allow {stale}: no such function over {args.max} lines; remove the entry")
    for t in too_long:
        print(t, file=sys.stderr)
    return 1 if too_long else 0


if __name__ == "__main__":
    sys.exit(main())
