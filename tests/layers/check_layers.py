#!/usr/bin/env python3
"""The layers of docs/ARCHITECTURE.md, checked: nothing includes upward, and the role folders
(api/, command-handlers/, projections/, subscribers/) never include one another's headers, but for
the pairs of PEER_USES (api/ uses the projections' pure plans).

    python3 tests/layers/check_layers.py [ROOT]

ROOT is the source tree (default: this file's ../..). Reads, for every folder below:
  - each .c and .h file's `#include "..."` lines, resolved as the compiler does for quotes (the
    file's own folder first, then the header of that name wherever it is in the layer folders);
  - the folder's CMake files (CMakeLists.txt, *.cmake): a path into another folder
    (${CMAKE_SOURCE_DIR}/x, ${PROJECT_SOURCE_DIR}/x, ${CMAKE_CURRENT_SOURCE_DIR}/../x), and each
    target_link_libraries item that is a library of another folder (its PUBLIC include folder
    would reach the linker's sources).
A folder may use itself and the folders of lower layers only. A header name found in several
folders, one of which the includer may not use, counts as a violation: which one the compiler
takes depends on the order of the -I flags. Prints each violation as `path:line: what`, then one
summary line; exit status 1 when there is any violation, 2 on a usage error.
"""
import os
import re
import sys

# top to bottom; folders on one row are peers and may not use each other
LAYERS = (
    ("bench", "history"),
    ("api", "command-handlers", "projections", "subscribers"),
    ("domain",),
    ("events",),
    ("schema-registry",),
    ("runtime",),
)
RANK = {folder: len(LAYERS) - i for i, row in enumerate(LAYERS) for folder in row}
# peers one may use all the same, and why: the API's cache (api/api_cache.c) applies the
# projections' own pure plans to the rows it holds (projections/pj_row.h), rather than a second copy
# of the projection logic that could drift from the read model it must match byte for byte
PEER_USES = {("api", "projections")}

INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"')
SOURCE_DIR_REF = re.compile(
    r"\$\{(?:CMAKE_SOURCE_DIR|PROJECT_SOURCE_DIR)\}/([\w.-]+)"
    r"|\$\{CMAKE_CURRENT_SOURCE_DIR\}/\.\./([\w.-]+)")
ADD_LIBRARY = re.compile(r"\badd_library\s*\(\s*([\w-]+)", re.I)
LINK = re.compile(r"\btarget_link_libraries\s*\(([^)]*)\)", re.I | re.S)
LINK_KEYWORDS = {"PUBLIC", "PRIVATE", "INTERFACE", "LINK_PUBLIC", "LINK_PRIVATE",
                 "LINK_INTERFACE_LIBRARIES", "debug", "optimized", "general"}


def may_use(user, used):
    """whether folder user may use folder used"""
    return used == user or RANK[used] < RANK[user] or (user, used) in PEER_USES


def rule(folder):
    below = sorted((f for f in RANK if RANK[f] < RANK[folder]), key=lambda f: -RANK[f])
    return f"{folder}/ may use itself and {', '.join(f + '/' for f in below) or 'nothing else'}"


def sources(root, folder):
    for dirpath, dirnames, filenames in os.walk(os.path.join(root, folder)):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(filenames):
            yield os.path.join(dirpath, name)


def folder_of(root, path):
    rel = os.path.relpath(os.path.realpath(path), os.path.realpath(root))
    top = rel.split(os.sep)[0]
    return top if top in RANK else None


def strip_cmake_comments(text):
    return "\n".join(re.sub(r"#.*", "", line) for line in text.splitlines())


def check(root):
    """(violations as (path, line, message), files read)"""
    headers = {}  # basename -> folders holding a header of that name
    libraries = {}  # CMake library target -> folder defining it
    files = {}
    for folder in RANK:
        for path in sources(root, folder):
            name = os.path.basename(path)
            if name.endswith((".c", ".h")):
                files[path] = folder
                if name.endswith(".h"):
                    headers.setdefault(name, set()).add(folder)
            elif name == "CMakeLists.txt" or name.endswith(".cmake"):
                files[path] = folder
                with open(path, encoding="utf-8", errors="replace") as f:
                    for lib in ADD_LIBRARY.findall(strip_cmake_comments(f.read())):
                        libraries[lib] = folder
    bad = []
    for path, folder in sorted(files.items()):
        rel = os.path.relpath(path, root)
        with open(path, encoding="utf-8", errors="replace") as f:
            text = f.read()
        if path.endswith((".c", ".h")):
            for n, line in enumerate(text.splitlines(), 1):
                m = INCLUDE.match(line)
                if not m:
                    continue
                inc = m.group(1)
                local = os.path.join(os.path.dirname(path), inc)
                if os.path.exists(local):
                    owners = {folder_of(root, local)} - {None}
                else:
                    owners = headers.get(os.path.basename(inc), set()) if "/" not in inc else set()
                wrong = sorted(o for o in owners if not may_use(folder, o))
                if wrong:
                    where = " or ".join(o + "/" for o in sorted(owners))
                    bad.append((rel, n, f'includes "{inc}" of {where} ({rule(folder)})'))
            continue
        code = strip_cmake_comments(text)
        for m in SOURCE_DIR_REF.finditer(code):
            used = m.group(1) or m.group(2)
            if used in RANK and not may_use(folder, used):
                n = code.count("\n", 0, m.start()) + 1
                bad.append((rel, n, f"reaches into {used}/ ({rule(folder)})"))
        for m in LINK.finditer(code):
            for item in m.group(1).split()[1:]:
                used = libraries.get(item)
                if item not in LINK_KEYWORDS and used and not may_use(folder, used):
                    n = code.count("\n", 0, m.start()) + 1
                    bad.append((rel, n, f"links {item} of {used}/ ({rule(folder)})"))
    return bad, len(files)


def main(argv):
    if len(argv) > 2 or (len(argv) == 2 and argv[1].startswith("-")):
        print(__doc__.strip().splitlines()[2].strip(), file=sys.stderr)
        return 2
    root = argv[1] if len(argv) == 2 else os.path.join(os.path.dirname(__file__), "..", "..")
    if not os.path.isdir(os.path.join(root, "runtime")):
        print(f"check_layers: '{root}' is not the source tree (no runtime/)", file=sys.stderr)
        return 2
    bad, n = check(root)
    for rel, line, what in bad:
        print(f"{rel}:{line}: {what}")
    print(f"layers: {len(bad)} violation{'s' * (len(bad) != 1)} in {n} files"
          if bad else f"layers: ok ({n} files)")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
