#!/usr/bin/env python3
"""Renders docs/api.md, the list of every public item of the `ipcring` library, from rustdoc's
HTML output, so the list cannot drift from the code:

    cargo doc --no-deps -p ipcring && python3 docs/api_list.py target/doc/ipcring > docs/api.md

CI runs the same and fails if docs/api.md differs. Items behind `#[doc(hidden)]` (the
`__private` module for ipcring's own tests and tools) are not documented, so not listed."""
import html
import os
import re
import sys

KIND_ORDER = ["struct", "enum", "trait", "fn", "type", "constant", "macro"]


def text(fragment):
    return " ".join(html.unescape(re.sub(r"<[^>]+>", "", fragment)).split())


def members(page):
    """The item's own members, from its sidebar: fields, variants, methods, trait methods and
    associated items; not the trait implementations it gets from elsewhere."""
    toc = re.search(r'<section id="rustdoc-toc">(.*?)</section>', page, re.S)
    if not toc:
        return []
    found = []
    for label, block in re.findall(r'<h3><a href="#[^"]*">(.*?)</a></h3><ul class="block[^"]*">(.*?)</ul>', toc.group(1), re.S):
        label = text(label)
        if "Implementation" in label or label.startswith("Methods from") or label.lower().startswith("aliased") or label in ("Implementors", "Sections", "Aliased Type"):
            continue
        names = [text(name) for name in re.findall(r"<li><a[^>]*>(.*?)</a></li>", block)]
        if names:
            found.append((label.lower(), names))
    return found


def module(root, path, lines, count):
    index = open(os.path.join(root, path, "index.html")).read()
    title = "ipcring" + ("::" + path.replace("/", "::") if path else "")
    lines.append("## `%s`" % title)
    lines.append("")
    summary = re.search(r'<details class="toggle top-doc" open><summary[^>]*>.*?</summary><div class="docblock">(.*?)</div>', index, re.S)
    if summary:
        first = re.search(r"<p>(.*?)</p>", summary.group(1), re.S)
        if first:
            lines.append(text(first.group(1)).replace("\n", " "))
            lines.append("")
    entries = re.findall(r'<dt><a class="(\w+)" href="([^"]+)" title="[^"]*">(.*?)</a>.*?</dt>(?:<dd>(.*?)</dd>)?', index, re.S)
    submodules = []
    by_kind = {}
    for kind, href, name, doc in entries:
        name = text(name)
        if kind == "mod":
            submodules.append(os.path.join(path, os.path.dirname(href)))
            continue
        by_kind.setdefault(kind, []).append((name, href, text(doc or "")))
    for kind in KIND_ORDER + sorted(set(by_kind) - set(KIND_ORDER)):
        for name, href, doc in by_kind.get(kind, []):
            count[0] += 1
            lines.append("- %s `%s`: %s" % (kind, name, doc))
            page_path = os.path.join(root, path, href)
            if os.path.exists(page_path):
                for label, names in members(open(page_path).read()):
                    count[1] += len(names)
                    lines.append("  - %s: %s" % (label, ", ".join("`%s`" % member for member in names)))
    lines.append("")
    for submodule in sorted(submodules):
        module(root, submodule, lines, count)


def main():
    root = sys.argv[1] if len(sys.argv) > 1 else "target/doc/ipcring"
    lines, count = [], [0, 0]
    module(root, "", lines, count)
    header = [
        "# The public API of `ipcring`",
        "",
        "Every public item of the library, by module, with its one-line summary and its variants,",
        "fields and methods. Rendered from rustdoc's output by `docs/api_list.py` (CI checks it is up to",
        "date): `cargo doc --no-deps -p ipcring && python3 docs/api_list.py target/doc/ipcring > docs/api.md`.",
        "",
        "%d items and %d members (variants, fields, methods)." % (count[0], count[1]),
        "",
    ]
    sys.stdout.write("\n".join(header + lines).rstrip() + "\n")


main()
