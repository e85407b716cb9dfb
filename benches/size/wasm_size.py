#!/usr/bin/env python3
"""What each crate costs in a .wasm: code bytes per crate from the `name` section, plus data.

Usage: wasm_size.py MODULE.wasm [TOP_N]

The module must keep its function names (build with CARGO_PROFILE_RELEASE_STRIP=false; see
docs/module-size.md). Each function's body size is attributed to the crate of its symbol: the
first path segment, or for `<T as Trait>::f` the crate of T unless T is a std type, then the
trait's crate. Prints the crates by code size, then the largest functions."""
import re
import sys
from collections import Counter


def leb(buf, pos):
    result = shift = 0
    while True:
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        shift += 7
        if b < 0x80:
            return result, pos


def sections(buf):
    pos = 8
    while pos < len(buf):
        sid = buf[pos]
        size, pos = leb(buf, pos + 1)
        yield sid, buf[pos : pos + size]
        pos += size


def demangle_legacy(sym):
    """`_ZN4core3fmt5write17h..E` -> `core::fmt::write` (enough to find crates)."""
    if not sym.startswith("_ZN"):
        return sym
    pos, parts = 3, []
    while pos < len(sym) and sym[pos].isdigit():
        m = re.match(r"\d+", sym[pos:])
        n = int(m.group(0))
        pos += len(m.group(0))
        parts.append(sym[pos : pos + n])
        pos += n
    if parts and re.fullmatch(r"h[0-9a-f]{16}", parts[-1]):
        parts.pop()
    text = "::".join(parts)
    for a, b in (("$LT$", "<"), ("$GT$", ">"), ("$u20$", " "), ("..", "::"), ("$RF$", "&"),
                 ("$C$", ","), ("$BP$", "*"), ("$u7b$", "{"), ("$u7d$", "}"), ("$u5b$", "["),
                 ("$u5d$", "]"), ("$LP$", "("), ("$RP$", ")")):
        text = text.replace(a, b)
    return text.lstrip("_")


STD = {"core", "alloc", "std", "compiler_builtins", "hashbrown", "dlmalloc", "wasi", "__rustc"}


def crate_of(name):
    if name.startswith("_R"):
        # v0 mangling (std's prebuilt parts): the first crate root `C[s<hash>_]<len><name>`.
        m = re.search(r"C(?:s[0-9A-Za-z]*_)?(\d+)", name)
        if m:
            start = m.end()
            return name[start : start + int(m.group(1))]
    if name.startswith("proxy_on_") or name.startswith("proxy_abi_"):
        return "proxy_wasm"
    if name in ("dlmalloc", "dlfree", "dlrealloc", "dispose_chunk", "malloc", "free", "realloc",
                "calloc", "aligned_alloc", "posix_memalign"):
        return "[allocator]"
    name = demangle_legacy(name)
    m = re.match(r"<\s*&?(?:mut )?(?:dyn )?([A-Za-z_][A-Za-z0-9_]*)[^ ]*(?: as &?([A-Za-z_][A-Za-z0-9_]*))?", name)
    if name.startswith("<") and m:
        ty, trait = m.group(1), m.group(2)
        if trait and (ty in STD or ty in ("str", "u8", "i64", "u64", "f64", "usize", "bool", "T")):
            return trait
        return ty
    m = re.match(r"([A-Za-z_][A-Za-z0-9_]*)::", name)
    if m:
        return m.group(1)
    return "[no crate: " + name.split("(")[0][:30] + "]" if not name.startswith("$") else "[other]"


def main():
    buf = open(sys.argv[1], "rb").read()
    top = int(sys.argv[2]) if len(sys.argv) > 2 else 25
    imported = 0
    bodies = []
    names = {}
    data = 0
    other = Counter()
    for sid, body in sections(buf):
        if sid == 2:
            count, pos = leb(body, 0)
            for _ in range(count):
                for _ in range(2):
                    n, pos = leb(body, pos)
                    pos += n
                kind = body[pos]
                pos += 1
                if kind == 0:
                    _, pos = leb(body, pos)
                    imported += 1
                elif kind == 1:
                    pos += 1
                    flags, pos = leb(body, pos)
                    _, pos = leb(body, pos)
                    if flags & 1:
                        _, pos = leb(body, pos)
                elif kind == 2:
                    flags, pos = leb(body, pos)
                    _, pos = leb(body, pos)
                    if flags & 1:
                        _, pos = leb(body, pos)
                else:
                    pos += 2
        elif sid == 10:
            count, pos = leb(body, 0)
            for _ in range(count):
                size, pos = leb(body, pos)
                bodies.append(size)
                pos += size
        elif sid == 11:
            data += len(body)
        elif sid == 0:
            n, pos = leb(body, 0)
            sname = body[pos : pos + n].decode()
            pos += n
            if sname != "name":
                other["custom:" + sname] += len(body)
                continue
            while pos < len(body):
                sub = body[pos]
                size, pos = leb(body, pos + 1)
                end = pos + size
                if sub == 1:
                    count, p = leb(body, pos)
                    for _ in range(count):
                        idx, p = leb(body, p)
                        ln, p = leb(body, p)
                        names[idx] = body[p : p + ln].decode(errors="replace")
                        p += ln
                pos = end
            other["custom:name"] += len(body)
        else:
            other["section %d" % sid] += len(body)
    per_crate = Counter()
    per_module = Counter()
    funcs = []
    for i, size in enumerate(bodies):
        name = names.get(imported + i, "?")
        crate = crate_of(name)
        per_crate[crate] += size
        plain = demangle_legacy(name)
        funcs.append((size, plain))
        if crate == "tollgate":
            m = re.search(r"tollgate::(\w+)(?:::(\w+))?", plain)
            if m:
                sub = m.group(1) + ("::" + m.group(2) if m.group(1) == "jwt" and m.group(2) else "")
                per_module["tollgate::" + sub] += size
    total = len(buf)
    code = sum(bodies)
    print(f"module {total} bytes: code {code}, data {data}, names/custom {sum(v for k, v in other.items() if k.startswith('custom'))}")
    print(f"{'crate':<28} {'code bytes':>10} {'share':>7}")
    for crate, size in per_crate.most_common(top):
        print(f"{crate:<28} {size:>10} {100 * size / code:>6.1f}%")
    print()
    print(f"{'tollgate module':<28} {'code bytes':>10}")
    for module, size in per_module.most_common(top):
        print(f"{module:<28} {size:>10}")
    print()
    for size, name in sorted(funcs, reverse=True)[:top]:
        print(f"{size:>8}  {name[:110]}")


if __name__ == "__main__":
    main()
