#!/usr/bin/python3
"""Checks that every code block the documentation quotes equals its source.

A fenced block in a Markdown file is quoted when the line just before it is

    <!-- quote: PATH [REGION] -->     the lines between the two `// [REGION]`
                                      (or `# [REGION]`) lines of PATH
    <!-- quote: PATH -->              the whole of PATH

PATH is relative to the repository root, whichever file quotes it. A region is
marked in the source the way Doxygen's \\snippet marks one: the same marker
line before and after it. The quoted text leaves out those lines and any other
region's marker lines inside it, and loses the indentation its lines share, so
a region inside a function quotes flush left.

    scripts/check_quotes.py          report every block that differs (exit 1)
    scripts/check_quotes.py --fix    rewrite those blocks from their sources
    scripts/check_quotes.py --self-test

Every Markdown file under the root is read, except in hidden directories and
build trees (a directory holding CMakeCache.txt). Only the standard library is
used. ctest runs the check (test `docs_quotes`) and the self-test.
"""

import argparse
import difflib
import os
import re
import sys
import tempfile

QUOTE = re.compile(r"^<!-- quote: (\S+?)(?: \[([A-Za-z0-9_.-]+)\])? -->\s*$")
FENCE = re.compile(r"^(```+|~~~+)")
ANY_REGION_MARKER = re.compile(r"^\s*(//|#) \[[A-Za-z0-9_.-]+\]\s*$")


class QuoteError(Exception):
    pass


def markdown_files(root):
    for here, dirs, files in os.walk(root):
        dirs[:] = sorted(
            d for d in dirs if not d.startswith(".") and not os.path.exists(os.path.join(here, d, "CMakeCache.txt"))
        )
        for name in sorted(files):
            if name.endswith(".md"):
                yield os.path.join(here, name)


def dedent(lines):
    indents = [len(line) - len(line.lstrip(" ")) for line in lines if line.strip()]
    cut = min(indents, default=0)
    return [line[cut:] if line.strip() else "" for line in lines]


def source_text(root, path, region):
    """The lines a block quoting PATH [REGION] must hold."""
    full = os.path.join(root, path)
    if not os.path.isfile(full):
        raise QuoteError(f"{path}: no such file")
    with open(full, encoding="utf-8") as f:
        lines = f.read().splitlines()
    if region is None:
        return lines
    marker = re.compile(r"^\s*(//|#) \[" + re.escape(region) + r"\]\s*$")
    at = [i for i, line in enumerate(lines) if marker.match(line)]
    if len(at) != 2:
        raise QuoteError(
            f"{path}: region [{region}] needs exactly two marker lines `// [{region}]`, found {len(at)}"
        )
    inside = [line for line in lines[at[0] + 1 : at[1]] if not ANY_REGION_MARKER.match(line)]
    return dedent(inside)


def quoted_blocks(lines, doc):
    """(marker line index, path, region, first body index, closing fence index) per quote."""
    i = 0
    while i < len(lines):
        m = QUOTE.match(lines[i])
        if not m:
            i += 1
            continue
        if i + 1 >= len(lines) or not FENCE.match(lines[i + 1]):
            raise QuoteError(f"{doc}:{i + 1}: a quote marker must be followed by a fenced code block")
        fence = FENCE.match(lines[i + 1]).group(1)
        end = i + 2
        while end < len(lines) and lines[end].rstrip() != fence:
            end += 1
        if end == len(lines):
            raise QuoteError(f"{doc}:{i + 2}: the quoted code block is not closed")
        yield i, m.group(1), m.group(2), i + 2, end
        i = end + 1


def check(root, fix, out=sys.stdout):
    """Returns the number of problems (0: every quote matches)."""
    problems = 0
    quotes = 0
    for doc_path in markdown_files(root):
        doc = os.path.relpath(doc_path, root)
        with open(doc_path, encoding="utf-8") as f:
            text = f.read()
        lines = text.splitlines()
        try:
            blocks = list(quoted_blocks(lines, doc))
        except QuoteError as e:
            print(f"error: {e}", file=out)
            problems += 1
            continue
        changed = False
        # From the end, so rewriting one block leaves the others' line numbers.
        for marker, path, region, body, end in reversed(blocks):
            quotes += 1
            name = path + (f" [{region}]" if region else "")
            try:
                want = source_text(root, path, region)
            except QuoteError as e:
                print(f"error: {doc}:{marker + 1}: {e}", file=out)
                problems += 1
                continue
            have = lines[body:end]
            if have == want:
                continue
            if fix:
                lines[body:end] = want
                changed = True
                print(f"fixed: {doc}:{marker + 1}: the block quoting {name}", file=out)
                continue
            problems += 1
            print(f"error: {doc}:{marker + 1}: the block differs from {name} (scripts/check_quotes.py --fix "
                  "copies it over):", file=out)
            for line in difflib.unified_diff(have, want, f"{doc} (quoted)", name, lineterm=""):
                print("  " + line, file=out)
        if changed:
            with open(doc_path, "w", encoding="utf-8") as f:
                f.write("\n".join(lines) + ("\n" if text.endswith("\n") else ""))
    print(f"check_quotes: {quotes} quoted block(s), {problems} problem(s)", file=out)
    return problems


def self_test():
    """The check passes on a matching block, fails on a changed one, and --fix repairs it."""
    import io

    with tempfile.TemporaryDirectory() as root:
        os.makedirs(os.path.join(root, "src"))
        with open(os.path.join(root, "src", "a.cpp"), "w") as f:
            f.write("int main() {\n  // [body]\n  int x = 1;\n  // [inner]\n  return x;\n  // [inner]\n  // [body]\n}\n")
        good = "# Doc\n\n<!-- quote: src/a.cpp [body] -->\n```cpp\nint x = 1;\nreturn x;\n```\n"
        doc = os.path.join(root, "doc.md")
        cases = [
            (good, 0, "a matching block"),
            (good.replace("x = 1", "x = 2"), 1, "a changed line"),
            (good.replace("return x;\n", ""), 1, "a missing line"),
            (good.replace("[body]", "[nope]"), 1, "an unknown region"),
            (good.replace("src/a.cpp", "src/b.cpp"), 1, "an unknown file"),
            (good.replace("```\n", ""), 1, "an unclosed block"),
        ]
        failures = 0
        for text, want, what in cases:
            with open(doc, "w") as f:
                f.write(text)
            got = check(root, fix=False, out=io.StringIO())
            if got != want:
                print(f"self-test: {what}: {got} problem(s), expected {want}")
                failures += 1
        with open(doc, "w") as f:
            f.write(good.replace("x = 1", "x = 2"))
        check(root, fix=True, out=io.StringIO())
        with open(doc) as f:
            if f.read() != good:
                print("self-test: --fix did not restore the block")
                failures += 1
        if check(root, fix=False, out=io.StringIO()) != 0:
            print("self-test: the check fails after --fix")
            failures += 1
        print(f"check_quotes self-test: {len(cases) + 2 - failures} of {len(cases) + 2} passed")
        return failures


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."),
                        help="repository root (default: this script's parent directory)")
    parser.add_argument("--fix", action="store_true", help="rewrite differing blocks from their sources")
    parser.add_argument("--self-test", action="store_true", help="check the checker on a scratch tree")
    args = parser.parse_args()
    if args.self_test:
        return 1 if self_test() else 0
    return 1 if check(os.path.abspath(args.root), args.fix) else 0


if __name__ == "__main__":
    sys.exit(main())
