/*
 * table.c - the tracker's bookkeeping: outstanding allocations, deduplicated
 * stacks and the frame pool.
 *
 * Why fixed-size tables allocated once with VirtualAlloc: the tracker runs
 * inside allocation hooks, so it must never allocate from the heaps it is
 * watching (that would recurse and could deadlock on heap locks).  Everything
 * is sized at start from the launcher's --max-* options.  When a table is
 * full we keep counting totals and set the "dropped" / "stacks lost" markers
 * instead of growing.
 *
 * Locking: one SRWLOCK (exclusive) guards all three tables.  Stack capture
 * happens before taking the lock, so the critical sections are short table
 * operations only, and nothing inside the lock calls into a hooked function.
 */
#include "ldtrack.h"
#include <string.h>
#include <stdio.h>

typedef struct alloc_entry {      /* one outstanding block; addr 0 = empty */
    uint64_t addr, size, time, heap;
    uint32_t stack;
    uint8_t  kind;
    uint8_t  pad[3];
} alloc_entry;

typedef struct stack_entry {      /* a unique stack: slice of the frame pool */
    uint64_t first;
    uint32_t count;
    uint32_t hash;
} stack_entry;

static SRWLOCK      g_lock = SRWLOCK_INIT;
static alloc_entry *g_allocs;      /* open addressing, linear probing */
static uint64_t     g_alloc_mask;  /* capacity - 1 (power of two) */
static uint32_t     g_alloc_max;   /* --max-allocations */
static uint32_t     g_alloc_count;
static uint64_t     g_bytes;       /* outstanding tracked bytes */

static stack_entry *g_stacks;
static uint32_t     g_stack_max, g_stack_count;
static uint32_t    *g_stack_index; /* hash -> stack index + 1 (0 = empty) */
static uint32_t     g_stack_index_mask;
static uint64_t    *g_frames;
static uint64_t     g_frame_max, g_frame_count;
static uint32_t     g_max_depth;

static uint64_t     g_total_allocs, g_total_frees, g_dropped, g_stacks_lost;
static int          g_truncated;
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
    /* VirtualAlloc pages are zeroed, which is our "empty" marker. */
    return VirtualAlloc(NULL, (SIZE_T)bytes, MEM_RESERVE | MEM_COMMIT, PAGE_READWRITE);
}

int tbl_init(uint32_t max_allocations, uint32_t max_stacks, uint32_t max_depth)
{
    if (max_allocations == 0) max_allocations = LD_DEFAULT_MAX_ALLOCATIONS;
    if (max_stacks == 0) max_stacks = LD_DEFAULT_MAX_STACKS;
    if (max_depth == 0) max_depth = LD_DEFAULT_MAX_DEPTH;
    if (max_depth > LD_MAX_DEPTH_LIMIT) max_depth = LD_MAX_DEPTH_LIMIT;

    g_alloc_max = max_allocations;
    g_alloc_mask = pow2_at_least((uint64_t)max_allocations * 2) - 1;
    g_stack_max = max_stacks;
    g_stack_index_mask = (uint32_t)(pow2_at_least((uint64_t)max_stacks * 2) - 1);
    g_frame_max = (uint64_t)max_stacks * 16;   /* average 16 frames a stack */
    g_max_depth = max_depth;

    g_allocs = big_alloc((g_alloc_mask + 1) * sizeof(alloc_entry));
    g_stacks = big_alloc((uint64_t)g_stack_max * sizeof(stack_entry));
    g_stack_index = big_alloc(((uint64_t)g_stack_index_mask + 1) * sizeof(uint32_t));
    g_frames = big_alloc(g_frame_max * sizeof(uint64_t));
    if (!g_allocs || !g_stacks || !g_stack_index || !g_frames) {
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
    return (a >> 4) * 0x9E3779B97F4A7C15ull >> 17;
}

static uint32_t hash_frames(void *const *frames, uint32_t n)
{
    uint64_t h = 1469598103934665603ull;            /* FNV-1a over pointers */
    for (uint32_t i = 0; i < n; i++) {
        h ^= (uint64_t)(uintptr_t)frames[i];
        h *= 1099511628211ull;
    }
    return (uint32_t)(h ^ (h >> 32));
}

/* Called with the lock held. Returns a stack index or LD_NO_STACK. */
static uint32_t intern_stack(void *const *frames, uint32_t n)
{
    uint32_t h = hash_frames(frames, n);
    uint32_t slot = h & g_stack_index_mask;
    for (;;) {
        uint32_t v = g_stack_index[slot];
        if (v == 0) break;
        stack_entry *s = &g_stacks[v - 1];
        if (s->hash == h && s->count == n) {
            uint32_t i = 0;
            while (i < n && g_frames[s->first + i] == (uint64_t)(uintptr_t)frames[i]) i++;
            if (i == n) return v - 1;
        }
        slot = (slot + 1) & g_stack_index_mask;
    }
    /* new stack: needs a stack slot and room in the frame pool */
    if (g_stack_count >= g_stack_max || g_frame_count + n > g_frame_max) {
        g_stacks_lost++;
        return LD_NO_STACK;
    }
    stack_entry *s = &g_stacks[g_stack_count];
    s->first = g_frame_count;
    s->count = n;
    s->hash = h;
    for (uint32_t i = 0; i < n; i++) g_frames[g_frame_count + i] = (uint64_t)(uintptr_t)frames[i];
    g_frame_count += n;
    g_stack_index[slot] = ++g_stack_count;
    return g_stack_count - 1;
}

void tbl_add(uint64_t addr, uint64_t size, uint64_t heap, uint8_t kind,
             void *const *frames, uint32_t nframes, int truncated)
{
    uint64_t t = ticks_now();
    if (addr == 0 || !g_allocs) return;
    AcquireSRWLockExclusive(&g_lock);
    g_total_allocs++;
    if (truncated) g_truncated = 1;
    uint64_t i = hash_addr(addr) & g_alloc_mask;
    while (g_allocs[i].addr != 0 && g_allocs[i].addr != addr) i = (i + 1) & g_alloc_mask;
    if (g_allocs[i].addr == addr) {
        /* Address reused without a free we saw (freed through an unhooked
         * path): the old record is stale, replace it. */
        g_bytes -= g_allocs[i].size;
    } else if (g_alloc_count >= g_alloc_max) {
        g_dropped++;
        ReleaseSRWLockExclusive(&g_lock);
        return;
    } else {
        g_alloc_count++;
    }
    g_allocs[i].addr = addr;
    g_allocs[i].size = size;
    g_allocs[i].time = t;
    g_allocs[i].heap = heap;
    g_allocs[i].kind = kind;
    g_allocs[i].stack = intern_stack(frames, nframes);
    g_bytes += size;
    ReleaseSRWLockExclusive(&g_lock);
}

int tbl_remove(uint64_t addr, uint64_t *old_size)
{
    if (addr == 0 || !g_allocs) return 0;
    AcquireSRWLockExclusive(&g_lock);
    uint64_t i = hash_addr(addr) & g_alloc_mask;
    while (g_allocs[i].addr != 0 && g_allocs[i].addr != addr) i = (i + 1) & g_alloc_mask;
    if (g_allocs[i].addr == 0) {              /* not ours (made before tracking) */
        ReleaseSRWLockExclusive(&g_lock);
        return 0;
    }
    g_total_frees++;
    if (old_size) *old_size = g_allocs[i].size;
    g_bytes -= g_allocs[i].size;
    g_alloc_count--;
    /* Backward-shift deletion keeps linear probing correct without tombstones:
     * move later entries of the same probe run into the hole when their home
     * slot is not cyclically inside (hole, j]. */
    uint64_t j = i;
    for (;;) {
        j = (j + 1) & g_alloc_mask;
        if (g_allocs[j].addr == 0) break;
        uint64_t k = hash_addr(g_allocs[j].addr) & g_alloc_mask;
        int stays = (i <= j) ? (i < k && k <= j) : (i < k || k <= j);
        if (!stays) {
            g_allocs[i] = g_allocs[j];
            i = j;
        }
    }
    memset(&g_allocs[i], 0, sizeof g_allocs[i]);
    ReleaseSRWLockExclusive(&g_lock);
    return 1;
}

uint64_t tbl_outstanding_bytes(void)
{
    uint64_t b;
    AcquireSRWLockShared(&g_lock);
    b = g_bytes;
    ReleaseSRWLockShared(&g_lock);
    return b;
}

static void put_u16(uint8_t *p, uint16_t v) { memcpy(p, &v, 2); }
static void put_u32(uint8_t *p, uint32_t v) { memcpy(p, &v, 4); }
static void put_u64(uint8_t *p, uint64_t v) { memcpy(p, &v, 8); }
static uint64_t align8(uint64_t v) { return (v + 7) & ~7ull; }

/*
 * Copies the tables into one buffer laid out per docs/allocation-stream.md:
 *   header(96) | frames | stacks | allocations | metadata (padded to 8).
 * The copy is done under the lock so the snapshot is consistent.  The buffer
 * comes from VirtualAlloc (not a watched heap); free it with VirtualFree.
 */
void *tbl_snapshot(const char *metadata, size_t *out_size)
{
    char extra[512];
    uint8_t *buf;
    FILETIME now;

    AcquireSRWLockExclusive(&g_lock);
    snprintf(extra, sizeof extra,
             "total_allocations=%llu\ntotal_frees=%llu\ndropped_allocations=%llu\n"
             "stacks_lost=%llu\noutstanding_bytes=%llu\npid=%lu\n",
             (unsigned long long)g_total_allocs, (unsigned long long)g_total_frees,
             (unsigned long long)g_dropped, (unsigned long long)g_stacks_lost,
             (unsigned long long)g_bytes, GetCurrentProcessId());
    uint64_t meta_len = strlen(metadata) + strlen(extra);
    uint64_t frames_off = LD_HEADER_SIZE;
    uint64_t stacks_off = align8(frames_off + g_frame_count * 8);
    uint64_t allocs_off = align8(stacks_off + (uint64_t)g_stack_count * 16);
    uint64_t meta_off = align8(allocs_off + (uint64_t)g_alloc_count * 40);
    uint64_t total = align8(meta_off + meta_len);
    if (total > 0xFFFFFFF0ull) {               /* user stream size is a ULONG */
        ReleaseSRWLockExclusive(&g_lock);
        ld_log("snapshot too large (%llu bytes)", (unsigned long long)total);
        return NULL;
    }
    buf = VirtualAlloc(NULL, (SIZE_T)total, MEM_RESERVE | MEM_COMMIT, PAGE_READWRITE);
    if (!buf) {
        ReleaseSRWLockExclusive(&g_lock);
        ld_log("snapshot VirtualAlloc(%llu) failed (error %lu)",
               (unsigned long long)total, GetLastError());
        return NULL;
    }
    uint32_t flags = LD_FLAG_RETURN_ADDRESSES;
    if (g_dropped) flags |= LD_FLAG_DROPPED;
    if (g_truncated) flags |= LD_FLAG_TRUNCATED;
    GetSystemTimeAsFileTime(&now);

    put_u32(buf + 0, LD_MAGIC);
    put_u16(buf + 4, 1);
    put_u16(buf + 6, 0);
    put_u32(buf + 8, LD_HEADER_SIZE);
    put_u32(buf + 12, flags);
    put_u64(buf + 16, ((uint64_t)g_start_ft.dwHighDateTime << 32) | g_start_ft.dwLowDateTime);
    put_u64(buf + 24, ((uint64_t)now.dwHighDateTime << 32) | now.dwLowDateTime);
    put_u64(buf + 32, frames_off);
    put_u64(buf + 40, g_frame_count);
    put_u64(buf + 48, stacks_off);
    put_u64(buf + 56, g_stack_count);
    put_u64(buf + 64, allocs_off);
    put_u64(buf + 72, g_alloc_count);
    put_u64(buf + 80, meta_off);
    put_u64(buf + 88, meta_len);

    memcpy(buf + frames_off, g_frames, g_frame_count * 8);
    for (uint32_t s = 0; s < g_stack_count; s++) {
        uint8_t *r = buf + stacks_off + (uint64_t)s * 16;
        put_u64(r, g_stacks[s].first);
        put_u32(r + 8, g_stacks[s].count);
        put_u32(r + 12, 0);
    }
    uint64_t n = 0;
    for (uint64_t i = 0; i <= g_alloc_mask && n < g_alloc_count; i++) {
        const alloc_entry *e = &g_allocs[i];
        if (e->addr == 0) continue;
        uint8_t *r = buf + allocs_off + n * 40;
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
    memcpy(buf + meta_off, metadata, strlen(metadata));
    memcpy(buf + meta_off + strlen(metadata), extra, strlen(extra));
    ReleaseSRWLockExclusive(&g_lock);
    *out_size = (size_t)total;
    return buf;
}
