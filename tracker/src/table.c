/*
 * table.c - the tracker's bookkeeping: outstanding allocations, deduplicated
 * stacks and the frame pool.
 *
 * Why fixed-size tables allocated once with VirtualAlloc: the tracker runs
 * inside the heap functions themselves, so it must never allocate from a heap
 * (that would recurse and could deadlock on heap locks).  Everything is sized
 * at start from the launcher's --max-* options.  When a table is full we keep
 * counting and set the "dropped" / "stacks lost" markers instead of growing.
 *
 * Concurrency: no lock is shared by every allocation.
 *  - The allocation table is split into LD_SHARDS shards chosen by a hash of
 *    the address; each shard is an open-addressing table (linear probing,
 *    backward-shift deletion) with its own SRWLOCK, counters and sequence.
 *    The limit --max-allocations is global (an interlocked counter).
 *  - Stacks are interned without a lock: frames are reserved in the pool and
 *    a stack record index with interlocked adds, written, then published by
 *    a compare-exchange into the stack hash index.  Two threads interning the
 *    same new stack at once may both write a record; the loser's record stays
 *    in the table unused (valid, just not referenced).
 *  - A snapshot copies one shard at a time under that shard's lock, then the
 *    stacks and frames published so far (every stack an allocation refers to
 *    was published before the allocation was inserted).
 *
 * Sequence numbers: every record gets a number unique within its shard.  A
 * free looks the record up (its number) before the real free and removes it
 * after the real free succeeded only if it is still that record: if another
 * thread got the same address back meanwhile and recorded it, the new record
 * stays.  A failed free (wrong heap, foreign CRT, double free) keeps the
 * record.
 */
#include "ldtrack.h"
#include <string.h>
#include <stdio.h>

typedef struct alloc_entry {      /* one outstanding block; addr 0 = empty */
    uint64_t addr, size, time, heap, seq;
    uint32_t stack;
    uint8_t  kind;
    uint8_t  pad[3];
} alloc_entry;

typedef struct shard {
    SRWLOCK      lock;
    alloc_entry *e;
    uint64_t     mask;            /* capacity - 1 */
    uint64_t     count, limit;    /* entries; at most limit (7/8 of capacity) */
    uint64_t     bytes;
    uint64_t     seq;
    uint64_t     total_allocs, total_frees;
    char         pad[64];         /* keep shards' hot fields on separate lines */
} shard;

typedef struct stack_entry {      /* a unique stack: slice of the frame pool */
    volatile uint64_t first;
    volatile uint32_t count;      /* written last: a reader seeing it sees first */
    uint32_t hash;
} stack_entry;

static shard        g_shards[LD_SHARDS];
static volatile LONG64 g_alloc_count;  /* all shards */
static uint64_t     g_alloc_max;       /* --max-allocations */

static stack_entry *g_stacks;
static uint32_t     g_stack_max;
static volatile LONG g_stack_next;     /* reserved stack records */
static volatile LONG *g_stack_index;   /* hash slot -> stack index + 1 (0 = empty) */
static uint32_t     g_stack_index_mask;
static uint64_t    *g_frames;
static uint64_t     g_frame_max;
static volatile LONG64 g_frame_next;   /* reserved frames */
static uint32_t     g_max_depth;

static volatile LONG64 g_dropped, g_stacks_lost;
static volatile LONG g_truncated;
static FILETIME     g_start_ft;
static LARGE_INTEGER g_qpc0, g_qpf;

static uint64_t pow2_at_least(uint64_t n)
{
    uint64_t p = 16;
    while (p < n) p <<= 1;
    return p;
}

static void *big_alloc(uint64_t bytes)
{
    /* VirtualAlloc pages are zeroed, which is our "empty" marker.  The
     * tracker's own memory is made with the hooks' guard held: not recorded. */
    return VirtualAlloc(NULL, (SIZE_T)bytes, MEM_RESERVE | MEM_COMMIT, PAGE_READWRITE);
}

int tbl_init(uint32_t max_allocations, uint32_t max_stacks, uint32_t max_depth)
{
    if (max_allocations == 0) max_allocations = LD_DEFAULT_MAX_ALLOCATIONS;
    if (max_stacks == 0) max_stacks = LD_DEFAULT_MAX_STACKS;
    if (max_depth == 0) max_depth = LD_DEFAULT_MAX_DEPTH;
    if (max_depth > LD_MAX_DEPTH_LIMIT) max_depth = LD_MAX_DEPTH_LIMIT;

    g_alloc_max = max_allocations;
    /* each shard holds twice its share, at least 64, filled at most to 7/8 */
    uint64_t cap = pow2_at_least((uint64_t)max_allocations * 2 / LD_SHARDS);
    if (cap < 64) cap = 64;
    for (int s = 0; s < LD_SHARDS; s++) {
        InitializeSRWLock(&g_shards[s].lock);
        g_shards[s].mask = cap - 1;
        g_shards[s].limit = cap - cap / 8;
        g_shards[s].e = big_alloc(cap * sizeof(alloc_entry));
        if (!g_shards[s].e) {
            ld_log("table allocation failed (error %lu)", GetLastError());
            return 0;
        }
    }
    g_stack_max = max_stacks;
    g_stack_index_mask = (uint32_t)(pow2_at_least((uint64_t)max_stacks * 2) - 1);
    g_frame_max = (uint64_t)max_stacks * 16;   /* average 16 frames a stack */
    g_max_depth = max_depth;

    g_stacks = big_alloc((uint64_t)g_stack_max * sizeof(stack_entry));
    g_stack_index = big_alloc(((uint64_t)g_stack_index_mask + 1) * sizeof(LONG));
    g_frames = big_alloc(g_frame_max * sizeof(uint64_t));
    if (!g_stacks || !g_stack_index || !g_frames) {
        ld_log("table allocation failed (error %lu)", GetLastError());
        return 0;
    }
    GetSystemTimeAsFileTime(&g_start_ft);
    if (!QueryPerformanceFrequency(&g_qpf) || !QueryPerformanceCounter(&g_qpc0)) {
        ld_log("QueryPerformanceCounter failed (error %lu)", GetLastError());
        return 0;
    }
    return 1;
}

uint32_t tbl_max_depth(void) { return g_max_depth; }

uint64_t tbl_page_round(uint64_t size) { return (size + 4095) & ~4095ull; }

/* 100 ns ticks since tracking start, from QPC (monotonic, cheap). */
static uint64_t ticks_now(void)
{
    LARGE_INTEGER now;
    uint64_t d, f = (uint64_t)g_qpf.QuadPart;
    if (!QueryPerformanceCounter(&now) || f == 0) return 0;
    d = (uint64_t)(now.QuadPart - g_qpc0.QuadPart);
    return (d / f) * 10000000ull + (d % f) * 10000000ull / f;
}

static uint64_t hash_addr(uint64_t a)
{
    return (a >> 4) * 0x9E3779B97F4A7C15ull;
}

static shard *shard_of(uint64_t h) { return &g_shards[h >> 58]; }   /* 64 shards */
static uint64_t home_of(uint64_t h, const shard *s) { return (h >> 20) & s->mask; }

static uint32_t hash_frames(void *const *frames, uint32_t n)
{
    uint64_t h = 1469598103934665603ull;            /* FNV-1a over pointers */
    for (uint32_t i = 0; i < n; i++) {
        h ^= (uint64_t)(uintptr_t)frames[i];
        h *= 1099511628211ull;
    }
    return (uint32_t)(h ^ (h >> 32));
}

static int same_stack(const stack_entry *s, uint32_t h, void *const *frames, uint32_t n)
{
    if (s->hash != h || s->count != n) return 0;
    for (uint32_t i = 0; i < n; i++)
        if (g_frames[s->first + i] != (uint64_t)(uintptr_t)frames[i]) return 0;
    return 1;
}

/* Lock-free. Returns a stack index or LD_NO_STACK. */
static uint32_t intern_stack(void *const *frames, uint32_t n)
{
    uint32_t h = hash_frames(frames, n);
    uint32_t slot = h & g_stack_index_mask;
    uint32_t mine = LD_NO_STACK;
    for (;;) {
        LONG v = g_stack_index[slot];
        if (v == 0) {
            if (mine == LD_NO_STACK) {
                /* reserve frames, then a record; write both; publish below */
                LONG64 first = InterlockedExchangeAdd64(&g_frame_next, (LONG64)n);
                if ((uint64_t)first + n > g_frame_max) {
                    InterlockedIncrement64(&g_stacks_lost);
                    return LD_NO_STACK;
                }
                LONG idx = InterlockedIncrement(&g_stack_next) - 1;
                if ((uint32_t)idx >= g_stack_max) {
                    InterlockedIncrement64(&g_stacks_lost);
                    return LD_NO_STACK;
                }
                for (uint32_t i = 0; i < n; i++) g_frames[first + i] = (uint64_t)(uintptr_t)frames[i];
                g_stacks[idx].first = (uint64_t)first;
                g_stacks[idx].hash = h;
                MemoryBarrier();
                g_stacks[idx].count = n;
                mine = (uint32_t)idx;
            }
            if (InterlockedCompareExchange(&g_stack_index[slot], (LONG)mine + 1, 0) == 0)
                return mine;
            continue;                /* lost the slot: look at what won it */
        }
        if (same_stack(&g_stacks[v - 1], h, frames, n)) return (uint32_t)(v - 1);
        slot = (slot + 1) & g_stack_index_mask;
    }
}

uint64_t tbl_add(uint64_t addr, uint64_t size, uint64_t heap, uint8_t kind,
                 void *const *frames, uint32_t nframes, int truncated)
{
    if (addr == 0 || !g_shards[0].e) return 0;
    uint64_t t = ticks_now();
    uint32_t stack = intern_stack(frames, nframes);
    if (truncated && !g_truncated) InterlockedExchange(&g_truncated, 1);
    uint64_t h = hash_addr(addr);
    shard *s = shard_of(h);
    AcquireSRWLockExclusive(&s->lock);
    s->total_allocs++;
    uint64_t i = home_of(h, s);
    while (s->e[i].addr != 0 && s->e[i].addr != addr) i = (i + 1) & s->mask;
    if (s->e[i].addr == addr) {
        /* Address reused before we removed the old record (another thread's
         * free succeeded and it has not removed it yet, or a free we did not
         * see): the old record is stale, replace it. */
        s->bytes -= s->e[i].size;
    } else if (s->count >= s->limit ||
               InterlockedIncrement64(&g_alloc_count) > (LONG64)g_alloc_max) {
        if (s->count < s->limit) InterlockedDecrement64(&g_alloc_count);
        InterlockedIncrement64(&g_dropped);
        ReleaseSRWLockExclusive(&s->lock);
        return 0;
    } else {
        s->count++;
    }
    uint64_t seq = ++s->seq;
    s->e[i].addr = addr;
    s->e[i].size = size;
    s->e[i].time = t;
    s->e[i].heap = heap;
    s->e[i].seq = seq;
    s->e[i].kind = kind;
    s->e[i].stack = stack;
    s->bytes += size;
    ReleaseSRWLockExclusive(&s->lock);
    return seq;
}

uint64_t tbl_lookup(uint64_t addr, uint64_t *size)
{
    if (addr == 0 || !g_shards[0].e) return 0;
    uint64_t h = hash_addr(addr), seq = 0;
    shard *s = shard_of(h);
    AcquireSRWLockShared(&s->lock);
    uint64_t i = home_of(h, s);
    while (s->e[i].addr != 0 && s->e[i].addr != addr) i = (i + 1) & s->mask;
    if (s->e[i].addr == addr) {
        seq = s->e[i].seq;
        if (size) *size = s->e[i].size;
    }
    ReleaseSRWLockShared(&s->lock);
    return seq;
}

/* Called with the shard's lock held: removes slot i (backward-shift deletion
 * keeps linear probing correct without tombstones: later entries of the same
 * probe run move into the hole unless their home slot lies cyclically in
 * (hole, j]). */
static void delete_at(shard *s, uint64_t i)
{
    s->total_frees++;
    s->bytes -= s->e[i].size;
    s->count--;
    InterlockedDecrement64(&g_alloc_count);
    uint64_t j = i;
    for (;;) {
        j = (j + 1) & s->mask;
        if (s->e[j].addr == 0) break;
        uint64_t k = home_of(hash_addr(s->e[j].addr), s);
        int stays = (i <= j) ? (i < k && k <= j) : (i < k || k <= j);
        if (!stays) {
            s->e[i] = s->e[j];
            i = j;
        }
    }
    memset(&s->e[i], 0, sizeof s->e[i]);
}

int tbl_remove_if(uint64_t addr, uint64_t seq)
{
    if (addr == 0 || seq == 0 || !g_shards[0].e) return 0;
    uint64_t h = hash_addr(addr);
    shard *s = shard_of(h);
    int done = 0;
    AcquireSRWLockExclusive(&s->lock);
    uint64_t i = home_of(h, s);
    while (s->e[i].addr != 0 && s->e[i].addr != addr) i = (i + 1) & s->mask;
    if (s->e[i].addr == addr && s->e[i].seq == seq) {
        delete_at(s, i);
        done = 1;
    }
    ReleaseSRWLockExclusive(&s->lock);
    return done;
}

void tbl_mark(uint64_t *marks)
{
    for (int k = 0; k < LD_SHARDS; k++) {
        AcquireSRWLockShared(&g_shards[k].lock);
        marks[k] = g_shards[k].seq;
        ReleaseSRWLockShared(&g_shards[k].lock);
    }
}

void tbl_forget_heap(uint64_t heap, const uint64_t *marks)
{
    if (heap == 0 || !g_shards[0].e) return;
    for (int k = 0; k < LD_SHARDS; k++) {
        shard *s = &g_shards[k];
        AcquireSRWLockExclusive(&s->lock);
        /* Deleting at i may move a not yet visited entry into i: look again.
         * Entries moved elsewhere go to slots after i or were already seen. */
        for (uint64_t i = 0; i <= s->mask; i++)
            while (s->e[i].addr != 0 && s->e[i].heap == heap && s->e[i].seq <= marks[k])
                delete_at(s, i);
        ReleaseSRWLockExclusive(&s->lock);
    }
}

uint64_t tbl_outstanding_bytes(void)
{
    uint64_t b = 0;
    for (int k = 0; k < LD_SHARDS; k++) b += g_shards[k].bytes;   /* racy read: a rule's estimate */
    return b;
}

static void put_u16(uint8_t *p, uint16_t v) { memcpy(p, &v, 2); }
static void put_u32(uint8_t *p, uint32_t v) { memcpy(p, &v, 4); }
static void put_u64(uint8_t *p, uint64_t v) { memcpy(p, &v, 8); }
static uint64_t align8(uint64_t v) { return (v + 7) & ~7ull; }

/* The regions table.c keeps (stream 1.3 tracker regions): each shard's
 * entries, the stack records, the stack hash index and the frame pool, each
 * one VirtualAlloc'd region; returns how many it wrote (at most
 * LD_SHARDS + 3). */
static uint32_t table_regions(ld_region *r)
{
    uint32_t n = 0;
    for (int k = 0; k < LD_SHARDS; k++) {
        if (!g_shards[k].e) continue;
        r[n].base = (uint64_t)(uintptr_t)g_shards[k].e;
        r[n].size = tbl_page_round((g_shards[k].mask + 1) * sizeof(alloc_entry));
        r[n++].kind = LD_REGION_ALLOCATIONS;
    }
    if (g_stacks) {
        r[n].base = (uint64_t)(uintptr_t)g_stacks;
        r[n].size = tbl_page_round((uint64_t)g_stack_max * sizeof(stack_entry));
        r[n++].kind = LD_REGION_STACKS;
    }
    if (g_stack_index) {
        r[n].base = (uint64_t)(uintptr_t)g_stack_index;
        r[n].size = tbl_page_round(((uint64_t)g_stack_index_mask + 1) * sizeof(LONG));
        r[n++].kind = LD_REGION_STACKS;
    }
    if (g_frames) {
        r[n].base = (uint64_t)(uintptr_t)g_frames;
        r[n].size = tbl_page_round(g_frame_max * sizeof(uint64_t));
        r[n++].kind = LD_REGION_STACKS;
    }
    return n;
}

/*
 * Builds the stream per docs/allocation-stream.md (version 1.3):
 *   header(128) | frames | stacks | allocations | metadata | module strings |
 *   tracker regions, each 8-byte aligned.
 * The allocations are copied first, one shard at a time under its lock, into
 * the end of the buffer; then the stacks and frames published by then; then
 * the allocations are moved into place.  The buffer comes from VirtualAlloc
 * (not a heap); free it with VirtualFree.
 */
void *tbl_snapshot(const char *metadata, const void *module_strings,
                   size_t module_strings_size, const ld_region *extra_regions, uint32_t nextra,
                   int declare_self, size_t *out_size)
{
    char extra[512];
    uint8_t *buf;
    FILETIME now;
    ld_region regions[LD_SHARDS + 3 + LD_EXTRA_REGIONS + 1];
    uint32_t nregions = table_regions(regions);
    for (uint32_t i = 0; i < nextra && i < LD_EXTRA_REGIONS; i++) regions[nregions++] = extra_regions[i];
    uint32_t self_region = nregions;
    if (declare_self) nregions++;
    /* Version 1.3: a 128-byte header; module strings (if any) after the
     * metadata, the tracker regions last. */
    uint64_t hsize = LD_HEADER_SIZE_1_3;
    uint64_t mstr_max = module_strings ? align8(module_strings_size) : 0;
    uint64_t frames_max = align8(g_frame_max * 8), stacks_max = align8((uint64_t)g_stack_max * 16);
    uint64_t allocs_cap = 0;
    for (int k = 0; k < LD_SHARDS; k++) allocs_cap += g_shards[k].limit;
    if (allocs_cap > g_alloc_max) allocs_cap = g_alloc_max;
    uint64_t meta_max = align8(strlen(metadata) + sizeof extra) + mstr_max +
                        (uint64_t)nregions * LD_REGION_SIZE;
    uint64_t tmp_off = hsize + frames_max + stacks_max;
    uint64_t cap = tmp_off + allocs_cap * 40 + meta_max;
    if (cap > 0xFFFFFFF0ull) cap = 0xFFFFFFF0ull;            /* user stream size is a ULONG */
    buf = VirtualAlloc(NULL, (SIZE_T)cap, MEM_RESERVE | MEM_COMMIT, PAGE_READWRITE);
    if (!buf) {
        ld_log("snapshot VirtualAlloc(%llu) failed (error %lu)", (unsigned long long)cap, GetLastError());
        return NULL;
    }
    if (declare_self) {
        regions[self_region].base = (uint64_t)(uintptr_t)buf;
        regions[self_region].size = tbl_page_round(cap);
        regions[self_region].kind = LD_REGION_SNAPSHOT;
    }

    uint64_t n = 0, total_allocs = 0, total_frees = 0, bytes = 0;
    for (int k = 0; k < LD_SHARDS; k++) {
        shard *s = &g_shards[k];
        AcquireSRWLockShared(&s->lock);
        total_allocs += s->total_allocs;
        total_frees += s->total_frees;
        bytes += s->bytes;
        for (uint64_t i = 0; i <= s->mask; i++) {
            const alloc_entry *e = &s->e[i];
            if (e->addr == 0) continue;
            if (tmp_off + (n + 1) * 40 > cap - meta_max) break;   /* cannot happen: count <= cap */
            uint8_t *r = buf + tmp_off + n * 40;
            put_u64(r, e->addr);
            put_u64(r + 8, e->size);
            put_u64(r + 16, e->time);
            put_u64(r + 24, e->heap);
            put_u32(r + 32, e->stack);
            r[36] = e->kind;
            r[37] = 0;
            put_u16(r + 38, 0);
            n++;
        }
        ReleaseSRWLockShared(&s->lock);
    }
    GetSystemTimeAsFileTime(&now);

    uint64_t nstacks = (uint64_t)g_stack_next;
    if (nstacks > g_stack_max) nstacks = g_stack_max;
    MemoryBarrier();
    uint64_t nframes = (uint64_t)g_frame_next;
    if (nframes > g_frame_max) nframes = g_frame_max;

    snprintf(extra, sizeof extra,
             "total_allocations=%llu\ntotal_frees=%llu\ndropped_allocations=%llu\n"
             "stacks_lost=%llu\noutstanding_bytes=%llu\npid=%lu\n",
             (unsigned long long)total_allocs, (unsigned long long)total_frees,
             (unsigned long long)g_dropped, (unsigned long long)g_stacks_lost,
             (unsigned long long)bytes, GetCurrentProcessId());
    uint64_t meta_len = strlen(metadata) + strlen(extra);
    uint64_t frames_off = hsize;
    uint64_t stacks_off = align8(frames_off + nframes * 8);
    uint64_t allocs_off = align8(stacks_off + nstacks * 16);
    uint64_t meta_off = align8(allocs_off + n * 40);
    uint64_t mstr_off = module_strings ? align8(meta_off + meta_len) : 0;
    uint64_t regs_off = module_strings ? mstr_off + mstr_max : align8(meta_off + meta_len);
    uint64_t total = regs_off + (uint64_t)nregions * LD_REGION_SIZE;

    uint32_t flags = LD_FLAG_RETURN_ADDRESSES;
    if (g_dropped) flags |= LD_FLAG_DROPPED;
    if (g_truncated) flags |= LD_FLAG_TRUNCATED;
    memcpy(buf + frames_off, g_frames, nframes * 8);
    for (uint64_t s = 0; s < nstacks; s++) {
        uint8_t *r = buf + stacks_off + s * 16;
        uint32_t count = g_stacks[s].count;      /* 0 while a record is being written */
        MemoryBarrier();
        uint64_t first = count ? g_stacks[s].first : 0;
        if (first + count > nframes) { first = 0; count = 0; }
        put_u64(r, first);
        put_u32(r + 8, count);
        put_u32(r + 12, 0);
    }
    memmove(buf + allocs_off, buf + tmp_off, n * 40);
    memset(buf + allocs_off + n * 40, 0, total - (allocs_off + n * 40));
    memcpy(buf + meta_off, metadata, strlen(metadata));
    memcpy(buf + meta_off + strlen(metadata), extra, strlen(extra));
    memset(buf + LD_HEADER_SIZE, 0, hsize - LD_HEADER_SIZE);
    if (module_strings) {
        memcpy(buf + mstr_off, module_strings, module_strings_size);
        put_u64(buf + 96, mstr_off);
        put_u64(buf + 104, module_strings_size);
    }
    for (uint32_t i = 0; i < nregions; i++) {
        uint8_t *r = buf + regs_off + (uint64_t)i * LD_REGION_SIZE;
        put_u64(r, regions[i].base);
        put_u64(r + 8, regions[i].size);
        put_u32(r + 16, regions[i].kind);
        put_u32(r + 20, 0);
    }
    put_u64(buf + 112, nregions ? regs_off : 0);
    put_u64(buf + 120, nregions);

    put_u32(buf + 0, LD_MAGIC);
    put_u16(buf + 4, 1);
    /* 1.1: allocator value 6 (Local/Global); 1.2: module strings, dump_type;
     * 1.3: tracker regions */
    put_u16(buf + 6, 3);
    put_u32(buf + 8, (uint32_t)hsize);
    put_u32(buf + 12, flags);
    put_u64(buf + 16, ((uint64_t)g_start_ft.dwHighDateTime << 32) | g_start_ft.dwLowDateTime);
    put_u64(buf + 24, ((uint64_t)now.dwHighDateTime << 32) | now.dwLowDateTime);
    put_u64(buf + 32, frames_off);
    put_u64(buf + 40, nframes);
    put_u64(buf + 48, stacks_off);
    put_u64(buf + 56, nstacks);
    put_u64(buf + 64, allocs_off);
    put_u64(buf + 72, n);
    put_u64(buf + 80, meta_off);
    put_u64(buf + 88, meta_len);
    *out_size = (size_t)total;
    return buf;
}
