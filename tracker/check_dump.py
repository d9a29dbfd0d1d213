#!/usr/bin/env python3
"""check_dump.py - stand-in for the Rust analyzer in the tracker's own test.

Parses a minidump's stream directory, the module list (stream 4) and the
leakdiag allocation stream (user stream 0x4C440001, spec: docs/
allocation-stream.md v1.0), checks that the stream is well formed, attributes
each outstanding allocation to the module of its innermost frame that is not
in allocator_modules nor in a small system/runtime list (RUNTIME below; frames
are return addresses: address - 1 is looked up),
prints a summary, and with --expect MODULE:BYTES:COUNT (repeatable) exits 1
unless that module's outstanding total matches exactly.

With --truth FILE, FILE is the output of a test program that prints its own
truth (demo/truth.c), one line per fact:
    truth NAME size=S count=N kind=K [addrs=0xA,0xB,...]
meaning: the dump holds exactly N allocation records of size S, all of
allocator kind K, and (when addrs is given) at exactly those addresses.  Each
scenario uses sizes no other code in the process asks for.  Lines
    truth-dropped
require header flag bit 1 and dropped_allocations > 0, and that the records
plus dropped_allocations account for every block the program still holds.

Standard library only.
"""
import argparse
import signal
import struct
import sys

LD_STREAM = 0x4C440001
MODULE_LIST = 4
# Like the analyzer, skip system/runtime modules too when picking the
# responsible module (the spec leaves the exact list to the reader).
RUNTIME = {"ntdll.dll", "kernel32.dll", "kernelbase.dll", "msvcrt.dll", "ucrtbase.dll",
           "vcruntime140.dll", "ole32.dll", "combase.dll", "oleaut32.dll"}
KINDS = {0: "unknown", 1: "heap", 2: "crt", 3: "virtual", 4: "cotask", 5: "bstr", 6: "local"}


class Bad(Exception):
    pass


def u(fmt, buf, off, what):
    size = struct.calcsize(fmt)
    if off < 0 or off + size > len(buf):
        raise Bad(f"{what}: read of {size} bytes at {off} outside {len(buf)}-byte buffer")
    return struct.unpack_from(fmt, buf, off)


def read_streams(data):
    sig, ver, n, rva = u("<IIII", data, 0, "minidump header")
    if sig != 0x504D444D:
        raise Bad(f"minidump signature {sig:#x} is not MDMP")
    streams = {}
    for i in range(n):
        t, size, off = u("<III", data, rva + 12 * i, f"directory entry {i}")
        if t == 0:
            continue
        if off + size > len(data):
            raise Bad(f"stream {t:#x} at {off}+{size} beyond file end {len(data)}")
        streams.setdefault(t, []).append((off, size))
    return streams


def read_modules(data, streams):
    mods = []
    for off, size in streams.get(MODULE_LIST, []):
        (count,) = u("<I", data, off, "module list")
        for i in range(count):
            m = off + 4 + 108 * i
            base, sz, _cks, _ts, name_rva = u("<QIIII", data, m, f"module {i}")
            (nlen,) = u("<I", data, name_rva, f"module {i} name")
            name = data[name_rva + 4:name_rva + 4 + nlen].decode("utf-16-le", "replace")
            mods.append((base, sz, name.replace("/", "\\").split("\\")[-1]))
    return mods


def parse_stream(s):
    (magic, vmaj, vmin, hsize, flags, t_start, t_snap,
     fo, fc, so, sc, ao, ac, mo, ms) = u("<IHHIIQQQQQQQQQQ", s, 0, "header")
    if magic != 0x4B41454C:
        raise Bad(f"magic {magic:#x} is not LEAK")
    if vmaj != 1:
        raise Bad(f"version_major {vmaj} unsupported")
    if hsize < 96 or hsize > len(s):
        raise Bad(f"header_size {hsize} invalid")

    def section(name, off, count, rec):
        if off % 8:
            raise Bad(f"{name}_offset {off} not 8-byte aligned")
        if count and (off < hsize or off + count * rec > len(s)):
            raise Bad(f"{name} section {off}+{count}*{rec} outside stream of {len(s)} bytes")

    section("frames", fo, fc, 8)
    section("stacks", so, sc, 16)
    section("allocations", ao, ac, 40)
    if mo:
        section("metadata", mo, ms, 1)
    frames = list(struct.unpack_from(f"<{fc}Q", s, fo)) if fc else []
    stacks = []
    for i in range(sc):
        first, cnt, res = struct.unpack_from("<QII", s, so + 16 * i)
        if first + cnt > fc:
            raise Bad(f"stack {i}: frames [{first},{first + cnt}) beyond frame_count {fc}")
        if res:
            raise Bad(f"stack {i}: reserved {res} not 0")
        stacks.append(frames[first:first + cnt])
    allocs = []
    for i in range(ac):
        addr, size, t, heap, st, kind, fl, res = struct.unpack_from("<QQQQIBBH", s, ao + 40 * i)
        if fl or res:
            raise Bad(f"allocation {i}: flags/reserved not 0")
        if st != 0xFFFFFFFF and st >= sc:
            raise Bad(f"allocation {i}: stack index {st} >= stack_count {sc}")
        allocs.append(dict(addr=addr, size=size, time=t, heap=heap, stack=st, kind=kind))
    meta = {}
    if mo:
        for line in s[mo:mo + ms].decode("utf-8").split("\n"):
            if "=" in line:
                k, v = line.split("=", 1)
                meta[k] = v
    hdr = dict(flags=flags, tracking_start=t_start, snapshot_time=t_snap, version=(vmaj, vmin),
               module_strings=parse_module_strings(s, hsize))
    return hdr, stacks, allocs, meta


def parse_module_strings(s, hsize):
    """The 1.2 module-strings section (spec section 13) as a list of
    (base, status, [5 strings]), or None without one; strict like the rest."""
    if hsize < 112:
        return None
    off, size = struct.unpack_from("<QQ", s, 96)
    if off == 0:
        return None
    if off % 8 or off + size > len(s) or size < 8:
        raise Bad(f"module strings section {off}+{size} misplaced in a stream of {len(s)} bytes")
    count, res = struct.unpack_from("<II", s, off)
    if res or count * 24 > size - 8:
        raise Bad(f"module strings: module_count {count} does not fit in {size} bytes")
    out, at, end = [], off + 8, off + size
    for i in range(count):
        if at + 24 > end:
            raise Bad(f"module strings: record {i} outside the section")
        base, image_size, *lens, status, res = struct.unpack_from("<QI5HBB", s, at)
        if any(n > 256 for n in lens) or at + 24 + sum(lens) > end or res:
            raise Bad(f"module strings: record {i} malformed (lengths {lens})")
        strings, p = [], at + 24
        for n in lens:
            strings.append(s[p:p + n].decode("utf-8"))
            p += n
        out.append((base, status, strings))
        at = (p + 7) & ~7
    return out


def module_of(mods, addr):
    for base, size, name in mods:
        if base <= addr < base + size:
            return name
    return "(unknown)"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("dump")
    ap.add_argument("--expect", action="append", default=[], metavar="MODULE:BYTES:COUNT",
                    help="require exactly BYTES in COUNT blocks for MODULE (repeatable)")
    ap.add_argument("--truth", metavar="FILE", help="check the program's printed truth")
    a = ap.parse_args()
    data = open(a.dump, "rb").read()
    try:
        streams = read_streams(data)
        if LD_STREAM not in streams:
            raise Bad("no allocation stream 0x4C440001 in the stream directory")
        off, size = streams[LD_STREAM][0]
        hdr, stacks, allocs, meta = parse_stream(data[off:off + size])
        mods = read_modules(data, streams)
    except Bad as e:
        print(f"{a.dump}: MALFORMED: {e}")
        return 2
    if not mods:
        print(f"{a.dump}: MALFORMED: no module list stream")
        return 2
    skip = {m.strip().lower() for m in meta.get("allocator_modules", "").split(",") if m.strip()}
    skip |= RUNTIME
    by_mod, by_kind = {}, {}
    for al in allocs:
        frames = stacks[al["stack"]] if al["stack"] != 0xFFFFFFFF else []
        resp = "(no stack)"
        for f in frames:
            name = module_of(mods, f - 1 if hdr["flags"] & 1 else f)
            if name.lower() not in skip and not name.lower().startswith("api-ms-win-"):
                resp = name
                break
        else:
            if frames:
                resp = module_of(mods, frames[0] - 1)
        b = by_mod.setdefault(resp, [0, 0])
        b[0] += al["size"]
        b[1] += 1
        k = by_kind.setdefault(KINDS.get(al["kind"], "unknown"), [0, 0])
        k[0] += al["size"]
        k[1] += 1
    print(f"{a.dump}: {len(data)} bytes, {len(streams)} stream types, {len(mods)} modules")
    print(f"  allocation stream {size} bytes: version {hdr['version'][0]}.{hdr['version'][1]}, "
          f"flags {hdr['flags']:#x}, {len(allocs)} allocations, {len(stacks)} stacks, "
          f"snapshot {(hdr['snapshot_time'] - hdr['tracking_start']) / 1e7:.2f} s after start")
    print("  metadata: " + "; ".join(f"{k}={v}" for k, v in meta.items()))
    if hdr["module_strings"] is not None:
        named = sum(1 for _, st, strs in hdr["module_strings"] if st == 0 and strs[0])
        print(f"  module strings: {len(hdr['module_strings'])} modules, {named} with a company name")
    for name, (b, c) in sorted(by_mod.items(), key=lambda x: -x[1][0]):
        print(f"  module {name:<24} {b:>10} bytes {c:>7} blocks")
    for name, (b, c) in sorted(by_kind.items()):
        print(f"  kind   {name:<24} {b:>10} bytes {c:>7} blocks")
    status = 0
    for spec in a.expect:
        try:
            mod, eb, ec = spec.rsplit(":", 2)
            eb, ec = int(eb), int(ec)
        except ValueError:
            print(f"bad --expect {spec!r}: want MODULE:BYTES:COUNT")
            return 2
        b, c = by_mod.get(mod, [0, 0])
        ok = b == eb and c == ec
        print(f"  {'PASS' if ok else 'FAIL'}: {mod} outstanding {b} bytes / {c} blocks, "
              f"expected {eb} bytes / {ec} blocks")
        if not ok:
            status = 1
    if a.truth:
        status |= check_truth(a.truth, hdr, allocs, meta)
    return status


def check_truth(path, hdr, allocs, meta):
    """Compares the records with the program's own truth (see the docstring)."""
    by_size = {}
    for al in allocs:
        by_size.setdefault(al["size"], []).append(al)
    status, passed = 0, 0
    total_bytes = sum(al["size"] for al in allocs)
    facts = [ln.split() for ln in open(path, encoding="utf-8", errors="replace")
             if ln.startswith("truth")]
    if not facts:
        print(f"  FAIL: no truth lines in {path}")
        return 1
    if str(total_bytes) != meta.get("outstanding_bytes"):
        print(f"  FAIL: records add up to {total_bytes} bytes, metadata says {meta.get('outstanding_bytes')}")
        status = 1
    for f in facts:
        if f[0] == "truth-dropped":
            held = int(f[1].split("=")[1]) if len(f) > 1 else 0
            size = int(f[2].split("=")[1]) if len(f) > 2 else 0
            dropped = int(meta.get("dropped_allocations", "0"))
            listed = len(by_size.get(size, []))
            ok = bool(hdr["flags"] & 2) and dropped > 0 and listed < held and listed + dropped >= held
            print(f"  {'PASS' if ok else 'FAIL'}: table full: {listed} of {held} blocks of {size} bytes "
                  f"listed, dropped_allocations={dropped}, flags={hdr['flags']:#x}")
            status |= 0 if ok else 1
            passed += ok
            continue
        name, kv = f[1], dict(x.split("=", 1) for x in f[2:])
        size, count = int(kv["size"]), int(kv["count"])
        recs = by_size.get(size, [])
        problems = []
        if len(recs) != count:
            problems.append(f"{len(recs)} records, expected {count}")
        if "kind" in kv:
            kinds = sorted({KINDS.get(r["kind"], "unknown") for r in recs})
            if recs and kinds != [kv["kind"]]:
                problems.append(f"kind {','.join(kinds)}, expected {kv['kind']}")
        if "addrs" in kv and kv["addrs"]:
            want = {int(x, 16) for x in kv["addrs"].split(",")}
            got = {r["addr"] for r in recs}
            if want != got:
                problems.append("addresses differ: missing " +
                                ",".join(hex(x) for x in sorted(want - got)) + " extra " +
                                ",".join(hex(x) for x in sorted(got - want)))
        ok = not problems
        passed += ok
        print(f"  {'PASS' if ok else 'FAIL'}: {name}: {count} x {size} bytes"
              + ("" if ok else ": " + "; ".join(problems)))
        status |= 0 if ok else 1
    print(f"  truth: {passed} of {len(facts)} facts hold")
    return status


if __name__ == "__main__":
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)   # quiet when piped into head
    sys.exit(main())
