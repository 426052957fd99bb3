#!/usr/bin/env python3
"""Rewrites a .cu file into C++ that the CPU emulation of the CUDA backend compiles with g++.

These constructs have no C++ spelling and are rewritten; everything else is left to the
headers in tests/emu/include:
  k<<<grid, block, smem, stream>>>(a, b);  ->  emu_launch("k", emu_config(grid, block, smem,
                                               stream), [=](auto &&...emu_a) mutable {
                                               k(emu_a...); }, a, b);
  (the arguments are evaluated and copied at the launch, as CUDA does, so that a launch
  recorded in a stream capture runs with them later)
  extern __shared__ T name[];              ->  T *name = (T *)emu_dyn_smem();
and __launch_bounds__(MAX, ...) becomes a check at the kernel's entry that the block has at
most MAX threads (a GPU refuses the launch otherwise),
and each static shared declaration is followed by a call that fills the array with NaN bytes
when a block first reaches it, as a GPU hands a block shared memory with whatever was there:
  __shared__ T a[N];                       ->  __shared__ T a[N]; static unsigned long long
                                               emu_fresh_a; emu_shared_fresh(&a, sizeof a,
                                               &emu_fresh_a);
Line numbers are kept (a #line names the original file), so compiler messages and the
emulation's own reports point into the .cu file.

usage: translate.py IN.cu OUT.cpp
"""
import os
import re
import sys

SHARED_RE = re.compile(r"extern\s+__shared__\s+(?:__align__\s*\(\s*\d+\s*\)\s*)?([^;\[]*?)\s*(\w+)\s*\[\s*\]\s*;")


def skip_back_ws(s, p):
    while p >= 0 and s[p].isspace():
        p -= 1
    return p


def callee_start(s, end):
    """Start of the kernel expression that ends just before index end (the '<<<')."""
    p = skip_back_ws(s, end - 1)
    if p >= 0 and s[p] == ">":
        depth = 0
        while p >= 0:
            if s[p] == ">":
                depth += 1
            elif s[p] == "<":
                depth -= 1
                if depth == 0:
                    break
            p -= 1
        p = skip_back_ws(s, p - 1)
    while p >= 0 and (s[p].isalnum() or s[p] in "_:"):
        p -= 1
    return p + 1


def matching_paren(s, i):
    """Index of the ')' that closes the '(' at index i, skipping strings and characters."""
    depth, p = 0, i
    while p < len(s):
        c = s[p]
        if c in "\"'":
            q = p + 1
            while s[q] != c:
                q += 2 if s[q] == "\\" else 1
            p = q
        elif c == "(":
            depth += 1
        elif c == ")":
            depth -= 1
            if depth == 0:
                return p
        p += 1
    raise ValueError("unbalanced parentheses after a kernel launch")


def rewrite_launches(s, path):
    out, pos = [], 0
    while True:
        i = s.find("<<<", pos)
        if i < 0:
            break
        j = s.find(">>>", i)
        k0 = j + 3
        while s[k0].isspace():
            k0 += 1
        if s[k0] != "(":
            line = s.count("\n", 0, i) + 1
            sys.exit(f"{path}:{line}: a kernel launch without an argument list")
        k1 = matching_paren(s, k0)
        start = callee_start(s, i)
        callee = s[start:i].strip()
        name = re.sub(r"\s+", "", callee)
        cfg, args = s[i + 3 : j], s[k0 + 1 : k1]
        tail = f", {args}" if args.strip() else ""
        new = (f'emu_launch("{name}", emu_config({cfg}), '
               f'[=](auto &&...emu_a) mutable {{ {callee}(emu_a...); }}{tail})')
        new += "\n" * (s.count("\n", start, k1 + 1) - new.count("\n"))
        out.append(s[pos:start])
        out.append(new)
        pos = k1 + 1
    out.append(s[pos:])
    return "".join(out)


STATIC_SHARED_RE = re.compile(r"\b__shared__\s+([^;{}()]*);")


def top_level_split(text):
    """text split at the commas outside brackets."""
    parts, depth, cur = [], 0, ""
    for c in text:
        depth += c in "[(<"
        depth -= c in "])>"
        if c == "," and depth == 0:
            parts.append(cur)
            cur = ""
        else:
            cur += c
    return parts + [cur]


def fresh_calls(m):
    names = []
    for i, decl in enumerate(top_level_split(m.group(1))):
        head = decl.split("[", 1)[0].split("=", 1)[0].strip()
        ident = re.search(r"(\w+)$", head)
        if ident is None:
            return m.group(0)
        names.append(ident.group(1))
    # each array's own marker of the block that last filled it
    calls = " ".join(
        f"static unsigned long long emu_fresh_{n}; emu_shared_fresh(&{n}, sizeof {n}, &emu_fresh_{n});"
        for n in names
    )
    return f"{m.group(0)} {calls}"


def rewrite_launch_bounds(s):
    """__launch_bounds__(MAX, ...) becomes a check of the block size at the kernel's first
    line, as a GPU refuses a launch of more threads than MAX."""
    out, pos = [], 0
    while True:
        i = s.find("__launch_bounds__", pos)
        if i < 0:
            break
        k0 = s.index("(", i)
        k1 = matching_paren(s, k0)
        first = top_level_split(s[k0 + 1 : k1])[0].strip()
        body = s.index("{", k1)
        out.append(s[pos:i])
        out.append("\n" * s.count("\n", i, k1 + 1))
        out.append(s[k1 + 1 : body + 1])
        out.append(f" emu_launch_bound({first});")
        pos = body + 1
    out.append(s[pos:])
    return "".join(out)


def rewrite_shared(s):
    s = SHARED_RE.sub(lambda m: f"{m.group(1)} *{m.group(2)} = ({m.group(1)} *)emu_dyn_smem();", s)
    return STATIC_SHARED_RE.sub(fresh_calls, s)


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    src, dst = sys.argv[1], sys.argv[2]
    with open(src, encoding="utf-8") as f:
        s = f.read()
    s = rewrite_launch_bounds(rewrite_shared(rewrite_launches(s, src)))
    os.makedirs(os.path.dirname(os.path.abspath(dst)), exist_ok=True)
    with open(dst, "w", encoding="utf-8") as f:
        f.write(f'#line 1 "{src}"\n')
        f.write(s)


if __name__ == "__main__":
    main()
