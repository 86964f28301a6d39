#!/usr/bin/env python3
"""Writes /usr/share/doc/PACKAGE/copyright for one regwatch executable.

The release binaries carry the Swift runtime and every Swift package they use linked in. The modules
linked into a product are read from SwiftPM's link list (PRODUCT.product/Objects.LinkFileList), each
module is mapped to the checkout that declares it, and each such package is listed with its version and
license. Apache-2.0 texts are referred to in /usr/share/common-licenses, as Debian asks; other texts are
included whole.

usage: deb-copyright.py PRODUCT BUILD_DIR PACKAGE_RESOLVED TOOLCHAIN_LICENSE BINARY
(BINARY unstripped: whether it carries ICU is read from its symbols)
"""
import json
import os
import re
import subprocess
import sys
import textwrap

product, build_dir, resolved_path, toolchain_license, binary = sys.argv[1:6]
checkouts = os.path.join(os.path.dirname(os.path.normpath(build_dir)), "checkouts")
if not os.path.isdir(checkouts):  # BUILD_DIR is .build/release, a link to .build/<triple>/release
    checkouts = os.path.join(build_dir, "..", "checkouts")

OWN_MODULES = re.compile(r"^(Regwatch\w*|regwatch_\w+|CCurl|CZeroMQ)$")


def linked_modules():
    names = set()
    with open(os.path.join(build_dir, f"{product}.product", "Objects.LinkFileList")) as f:
        for line in f:
            m = re.search(r"/release/([^/]+)\.build/", line.strip().strip('"'))
            if m:
                names.add(m.group(1))
    return sorted(names)


def package_of(module):
    """The checkout declaring `module`: a source directory of that name, else a target of that name."""
    for pkg in sorted(os.listdir(checkouts)):
        root = os.path.join(checkouts, pkg)
        for d in (os.path.join(root, "Sources", module), os.path.join(root, module)):
            if os.path.isdir(d):
                return pkg, d
    for pattern in (r'(?:target|Target)\(\s*name:\s*"%s"', r'^\s*name:\s*"%s",'):
        for pkg in sorted(os.listdir(checkouts)):
            manifest = os.path.join(checkouts, pkg, "Package.swift")
            if os.path.exists(manifest) and re.search(pattern % re.escape(module), open(manifest).read(), re.M):
                return pkg, None
    return None, None


def indent(text):
    """Text as a Debian copyright file holds it: every line indented, empty lines as ' .'."""
    out = []
    for line in text.rstrip().splitlines():
        line = line.rstrip().expandtabs()
        out.append(" " + line if line.strip() else " .")
    return "\n".join(out)


def license_text(path):
    text = open(path, encoding="utf-8", errors="replace").read()
    if "Apache License" in text and "Version 2.0" in text:
        summary = "Apache-2.0: the full text is in /usr/share/common-licenses/Apache-2.0."
        m = re.search(r"(##\s*Runtime Library Exception.*)", text, re.S)
        if m:
            summary += "\n\n" + m.group(1).strip()
        return summary
    return text


def main():
    pins = {}
    with open(resolved_path) as f:
        for pin in json.load(f).get("pins", []):
            state = pin.get("state", {})
            pins[pin["identity"]] = state.get("version") or state.get("branch") or state.get("revision", "")[:12]

    packages = {}
    nested = {}
    for module in linked_modules():
        if OWN_MODULES.match(module):
            continue
        pkg, src = package_of(module)
        if pkg is None:
            sys.exit(f"deb-copyright.py: no checkout declares module {module}")
        packages.setdefault(pkg, []).append(module)
        if src:
            for name in sorted(os.listdir(src)):
                if re.match(r"(LICEN[CS]E|COPYING)", name, re.I):
                    nested.setdefault(pkg, []).append((module, os.path.join(src, name)))

    symbols = subprocess.run(["nm", binary], capture_output=True, text=True, check=True).stdout
    if re.search(r" icudt\d+_dat$", symbols, re.M):
        runtime = ("Swift standard library, Swift Concurrency, Foundation, libdispatch, and ICU (from\n"
                   "swift-foundation-icu; ICU is under the Unicode License v3)")
    else:
        runtime = "Swift standard library, Swift Concurrency, FoundationEssentials, libdispatch"
    out = [textwrap.dedent(f"""\
        {product}

        Copyright: the regwatch maintainers.
        License: the regwatch repository does not state a license; this file grants none.

        The executable /usr/bin/{product} contains, linked in, the Swift runtime and the Swift packages
        listed below. Their copyright notices and licenses follow.

        Swift runtime ({{runtime}})
        Copyright: Apple Inc. and the Swift project authors.
        License:""").replace("{runtime}", runtime)]
    out.append(indent(license_text(toolchain_license)))

    for pkg in sorted(packages, key=str.lower):
        root = os.path.join(checkouts, pkg)
        version = pins.get(pkg.lower()) or pins.get(pkg.lower().removesuffix(".git"), "")
        out.append("")
        out.append(f"{pkg} {version} (modules: {', '.join(sorted(packages[pkg]))})")
        lic = next((os.path.join(root, n) for n in sorted(os.listdir(root)) if re.match(r"LICEN[CS]E", n, re.I)), None)
        if lic is None:
            sys.exit(f"deb-copyright.py: {pkg} has no license file")
        out.append("License:")
        out.append(indent(license_text(lic)))
        notice = next((os.path.join(root, n) for n in sorted(os.listdir(root)) if re.match(r"NOTICE", n, re.I)), None)
        if notice:
            out.append("Notice:")
            out.append(indent(open(notice, encoding="utf-8", errors="replace").read()))
        for module, path in nested.get(pkg, []):
            out.append(f"License of module {module}:")
            out.append(indent(license_text(path)))
        if pkg == "swift-crypto":
            out.append(indent("swift-crypto's C modules carry BoringSSL (Apache-2.0, as above) and XKCP (public domain "
                              "dedication CC0-1.0: the full text is in /usr/share/common-licenses/CC0-1.0)."))

    sys.stdout.write("\n".join(out) + "\n")


main()
