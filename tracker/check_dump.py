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

With --expect-regions the stream must declare the tracker's own memory
(format 1.3, spec section 14: tracker_regions_offset/count at header bytes
112/120), with at least one allocation-table region.

With --copies (a full-memory dump: Memory64ListStream 9 or MemoryListStream
5), for every outstanding block, the 8-byte words of the dump's memory equal
to its address are counted, split into: inside a declared tracker region,
inside another outstanding block, and elsewhere ("stray": what a
reachability scan would take for a root's reference).  --max-stray N fails
when more than N stray copies are found.

With --reach (and --truth), the dump is scanned as a reachability analyzer
would (roots: all memory outside outstanding blocks and declared regions, a
thread's stack only from its stack pointer up; pointers into a block,
interior ones too, follow it), and each truth line's classes
(unreachable=, unreferenced=, reachable=) must match.

Standard library only.
"""
import argparse
import array
import bisect
import signal
import struct
import sys

LD_STREAM = 0x4C440001
THREAD_LIST = 3
MODULE_LIST = 4
MEMORY_LIST = 5
MEMORY64_LIST = 9
REGION_KINDS = {0: "other", 1: "allocation table", 2: "stack table", 3: "snapshot buffer",
                4: "module strings", 5: "tracker image"}
# Like the analyzer, skip system/runtime modules too when picking the
# responsible module (the spec leaves the exact list to the reader).
RUNTIME = {"ntdll.dll", "kernel32.dll", "kernelbase.dll", "msvcrt.dll", "ucrtbase.dll",
           "vcruntime140.dll", "ole32.dll", "combase.dll", "oleaut32.dll"}
KINDS = {0: "unknown", 1: "heap", 2: "crt", 3: "virtual", 4: "cotask", 5: "bstr", 6: "local"}


class Bad(Exception):
    pass


mem_data = [b""]      # the dump's bytes, for count_copies


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
               module_strings=parse_module_strings(s, hsize),
               regions=parse_regions(s, vmin, hsize, [(fo, fc * 8), (so, sc * 16), (ao, ac * 40),
                                                      (mo, ms if mo else 0)]))
    return hdr, stacks, allocs, meta


def parse_regions(s, vmin, hsize, sections):
    """The 1.3 tracker-regions section (spec section 14) as a list of
    (base, size, kind), [] when the stream declares that the tracker keeps no
    memory, None when it does not declare (older minor version or a header
    under 128 bytes); strict like the rest."""
    if vmin < 3 or hsize < 128:
        return None
    off, count = struct.unpack_from("<QQ", s, 112)
    if count == 0:
        return []
    if off % 8:
        raise Bad(f"tracker_regions_offset {off} not 8-byte aligned")
    if count > (len(s) - off) // 24 if off <= len(s) else True:
        raise Bad(f"tracker_region_count {count} records of 24 bytes at {off} do not fit "
                  f"in a stream of {len(s)} bytes")
    if off < hsize:
        raise Bad(f"tracker_regions_offset {off} lies inside the {hsize}-byte header")
    for o, n in sections:
        if n and off < o + n and o < off + 24 * count:
            raise Bad(f"tracker regions {off}+{24 * count} overlap a section at {o}+{n}")
    out = []
    for i in range(count):
        base, size, kind, res = struct.unpack_from("<QQII", s, off + 24 * i)
        if base + size > 0xFFFFFFFFFFFFFFFF:
            raise Bad(f"tracker region {i}: base {base:#x} + size {size:#x} overflows")
        if res or kind not in REGION_KINDS:
            raise Bad(f"tracker region {i}: kind {kind} / reserved {res} not valid")
        out.append((base, size, kind))
    return out

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
    ap.add_argument("--expect-regions", action="store_true",
                    help="require the tracker-regions section (format 1.3)")
    ap.add_argument("--copies", action="store_true",
                    help="count copies of block addresses in the dump's memory")
    ap.add_argument("--max-stray", type=int, metavar="N",
                    help="with --copies: fail when more than N copies lie outside regions and blocks")
    ap.add_argument("--reach", action="store_true",
                    help="with --truth: check each case's reachability classes")
    a = ap.parse_args()
    data = open(a.dump, "rb").read()
    mem_data[0] = data
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
    regions = hdr["regions"]
    if regions is None:
        print("  tracker regions: not declared (tracker memory may hide leaks)")
    else:
        by = {}
        for _b, sz, k in regions:
            by.setdefault(REGION_KINDS[k], [0, 0])
            by[REGION_KINDS[k]][0] += 1
            by[REGION_KINDS[k]][1] += sz
        print(f"  tracker regions: {len(regions)} declared: " +
              ", ".join(f"{k} {n} ({sz} bytes)" for k, (n, sz) in sorted(by.items())))
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
    if a.expect_regions:
        ok = bool(regions) and any(k == 1 for _b, _s, k in regions)
        print(f"  {'PASS' if ok else 'FAIL'}: tracker regions declared "
              f"(version {hdr['version'][0]}.{hdr['version'][1]})")
        status |= 0 if ok else 1
    if a.truth:
        status |= check_truth(a.truth, hdr, allocs, meta)
    if a.copies or a.reach:
        mem = read_memory(data, streams)
        if not mem:
            print("  FAIL: --copies/--reach need a dump with memory (stream 9 or 5)")
            return 1
        if a.copies:
            stray = count_copies(mem, allocs, regions or [])
            if a.max_stray is not None and stray > a.max_stray:
                print(f"  FAIL: {stray} stray copies, at most {a.max_stray} allowed")
                status |= 1
        if a.reach:
            if not a.truth:
                print("  FAIL: --reach needs --truth")
                return 1
            status |= check_reach(a.truth, data, streams, mem, allocs, regions or [])
    return status


def read_memory(data, streams):
    """The dump's memory as a sorted list of (address, file offset, size)."""
    mem = []
    for off, _size in streams.get(MEMORY64_LIST, []):
        n, rva = u("<QQ", data, off, "memory64 list")
        for i in range(n):
            start, size = u("<QQ", data, off + 16 + 16 * i, f"memory64 range {i}")
            if rva + size > len(data):
                raise Bad(f"memory64 range {i} beyond file end")
            mem.append((start, rva, size))
            rva += size
    for off, _size in streams.get(MEMORY_LIST, []):
        (n,) = u("<I", data, off, "memory list")
        for i in range(n):
            start, size, rva = u("<QII", data, off + 4 + 16 * i, f"memory range {i}")
            mem.append((start, rva, size))
    mem.sort()
    return mem


def words(data, mem, lo, hi):
    """(address, value) of every 8-byte aligned word of memory whose value lies
    in [lo, hi): the candidates a pointer scan looks at."""
    for start, rva, size in mem:
        skip = (-start) % 8
        n = (size - skip) // 8
        if n <= 0:
            continue
        arr = array.array("Q")
        arr.frombytes(data[rva + skip:rva + skip + 8 * n])
        base = start + skip
        for i, v in enumerate(arr):
            if lo <= v < hi:
                yield base + 8 * i, v


class Intervals:
    """Sorted, merged [start, end) intervals with a membership test."""

    def __init__(self, spans):
        merged = []
        for a, b in sorted(spans):
            if b <= a:
                continue
            if merged and a <= merged[-1][1]:
                merged[-1][1] = max(merged[-1][1], b)
            else:
                merged.append([a, b])
        self.starts = [m[0] for m in merged]
        self.ends = [m[1] for m in merged]

    def find(self, x):
        i = bisect.bisect_right(self.starts, x) - 1
        return i if i >= 0 and x < self.ends[i] else -1


def block_index(allocs):
    blocks = sorted((al["addr"], al["addr"] + max(al["size"], 1)) for al in allocs)
    starts = [b[0] for b in blocks]

    def owner(x):
        i = bisect.bisect_right(starts, x) - 1
        return i if i >= 0 and x < blocks[i][1] else -1
    return blocks, owner


def count_copies(mem, allocs, regions):
    data = mem_data[0]
    addrs = {al["addr"] for al in allocs}
    if not addrs:
        print("  copies: no outstanding blocks")
        return 0
    _blocks, owner = block_index(allocs)
    regs = Intervals((b, b + s) for b, s, _k in regions)
    in_region = in_block = stray = 0
    stray_where = {}
    blocks_with_stray = set()
    for at, v in words(data, mem, min(addrs), max(addrs) + 1):
        if v not in addrs:
            continue
        if regs.find(at) >= 0:
            in_region += 1
        elif owner(at) >= 0:
            in_block += 1
        else:
            stray += 1
            blocks_with_stray.add(v)
            page = at & ~0xFFFF
            stray_where[page] = stray_where.get(page, 0) + 1
    print(f"  copies of the {len(addrs)} block addresses: {in_region} in declared regions, "
          f"{in_block} in other blocks, {stray} stray (outside both; "
          f"{len(blocks_with_stray)} blocks have one)")
    for page, n in sorted(stray_where.items(), key=lambda x: -x[1])[:8]:
        print(f"    stray: {n} in the 64 KiB at {page:#x}")
    return stray


def thread_stacks(data, streams, mem):
    """(stack pointer, dead start, stack end) of each thread (x64 contexts):
    [dead start, stack pointer) is the dead part of the stack, from the start
    of the dump's memory range that holds the stack pointer."""
    out = []
    for off, _size in streams.get(THREAD_LIST, []):
        (n,) = u("<I", data, off, "thread list")
        for i in range(n):
            (_tid, _sc, _pc, _pr, _teb, st_start, st_size, _st_rva, ctx_size, ctx_rva) = u(
                "<IIIIQQIIII", data, off + 4 + 48 * i, f"thread {i}")
            rsp = u("<Q", data, ctx_rva + 0x98, f"thread {i} context")[0] if ctx_size >= 0xA0 else st_start
            dead = st_start
            for start, _rva, size in mem:
                if start <= rsp < start + size:
                    dead = min(dead, start)
            out.append((rsp, dead, st_start + st_size))
    return out


def image_roots(data, mods, mem):
    """The parts of module images that are not roots: everything but the
    writable sections (headers, code, read-only data, debug sections)."""
    def rd(a, n):
        for s, r, z in mem:
            if s <= a and a + n <= s + z:
                return data[r + a - s:r + a - s + n]
        return None
    out = []
    for base, size, _name in mods:
        h = rd(base, 0x1000)
        if not h or h[:2] != b"MZ":
            continue
        e = struct.unpack_from("<I", h, 0x3C)[0]
        if e + 24 > len(h):
            continue
        nsec, = struct.unpack_from("<H", h, e + 6)
        opt, = struct.unpack_from("<H", h, e + 20)
        so = e + 24 + opt
        writable = []
        for i in range(nsec):
            if so + 40 * i + 40 > len(h):
                break
            vs, va = struct.unpack_from("<II", h, so + 40 * i + 8)
            ch, = struct.unpack_from("<I", h, so + 40 * i + 36)
            if ch & 0x80000000:
                writable.append((base + va, base + va + ((vs + 0xFFF) & ~0xFFF)))
        at = base
        for a, b in sorted(writable):
            if at < a:
                out.append((at, a))
            at = max(at, b)
        if at < base + size:
            out.append((at, base + size))
    return out


def check_reach(path, data, streams, mem, allocs, regions):
    """Classes per block from a conservative scan, compared with the truth."""
    if not allocs:
        print("  FAIL: no blocks")
        return 1
    blocks, owner = block_index(allocs)
    lo, hi = blocks[0][0], max(b[1] for b in blocks)
    regs = Intervals((b, b + s) for b, s, _k in regions)
    stacks = thread_stacks(data, streams, mem)
    not_roots = Intervals(image_roots(data, read_modules(data, streams), mem))
    root_hit = set()             # blocks pointed to from a root
    edges = {}                   # block -> blocks it points to
    referenced = set()           # blocks pointed to by another block
    for at, v in words(data, mem, lo, hi):
        tgt = owner(v)
        if tgt < 0:
            continue
        src = owner(at)
        if src >= 0:
            if src != tgt:
                edges.setdefault(src, set()).add(tgt)
                referenced.add(tgt)
            continue
        if regs.find(at) >= 0 or not_roots.find(at) >= 0:
            continue
        dead = any(start <= at < rsp for rsp, start, end in stacks if start <= at < end)
        if dead:
            continue
        root_hit.add(tgt)
    reach = set(root_hit)
    todo = list(root_hit)
    while todo:
        b = todo.pop()
        for t in edges.get(b, ()):
            if t not in reach:
                reach.add(t)
                todo.append(t)
    start_of = {b[0]: i for i, b in enumerate(blocks)}
    status, passed, n = 0, 0, 0
    for ln in open(path, encoding="utf-8", errors="replace"):
        f = ln.split()
        if not f or f[0] != "truth":
            continue
        kv = dict(x.split("=", 1) for x in f[2:])
        if "unreachable" not in kv:
            continue
        n += 1
        idx = [start_of.get(int(x, 16), -1) for x in kv["addrs"].split(",")]
        got = dict(unreachable=sum(1 for i in idx if i >= 0 and i not in reach),
                   unreferenced=sum(1 for i in idx if i >= 0 and i not in reach and i not in referenced),
                   reachable=sum(1 for i in idx if i in reach))
        want = {k: int(kv[k]) for k in got}
        ok = got == want and -1 not in idx
        passed += ok
        status |= 0 if ok else 1
        print(f"  {'PASS' if ok else 'FAIL'}: reach {f[1]}: " +
              " ".join(f"{k}={got[k]}" for k in got) + ("" if ok else f" (expected {want})"))
    print(f"  reach: {passed} of {n} cases hold")
    return status if n else 1


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
