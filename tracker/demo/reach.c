/*
 * reach.c - test program for reachability (issue 13) that prints its own
 * truth: which of its outstanding blocks are unreachable (leaked), which of
 * those are unreferenced (heads), and which are held, and by what.
 *
 * Built with -O0 (tracker/Makefile) and every case in its own noinline
 * function, so that pointers sit exactly where this file says.
 *
 *   leak_drop         40 x 1001 bytes: pointers dropped, frame gone
 *                     -> unreachable and unreferenced
 *   cache_fill        30 x 2003 bytes kept in the global array g_cache
 *                     -> reachable, holder reach.exe!g_cache (kind global)
 *   requests_in_main  20 x 3005 bytes kept in a local array of main
 *                     -> reachable, holder the main thread's stack (kind stack)
 *   list_build        25 x 1607-byte nodes of a singly linked list, head
 *                     dropped -> 25 unreachable, 1 unreferenced (the head)
 *   cycle_build        2 x 1709 bytes pointing at each other, both dropped
 *                     -> 2 unreachable, 0 unreferenced
 *
 * Every block is filled with 0x5A bytes (except its own link pointers), so
 * that no stale pointer left in reused heap memory makes a block look
 * referenced.  The blocks come from malloc of msvcr120.dll, loaded at run
 * time after every free range of the address space below 4 GiB was reserved
 * (and released again right after): its heap, created when it loads, then
 * lies above 4 GiB and was never used before.  Under Wine the usual heaps lie
 * at low addresses (0xd90000), which small numbers in data tables and the
 * heap's own page-aligned bookkeeping values match by chance: a conservative
 * scan would take them for references.  Each case calls malloc itself (the
 * FILLED macro), so that the case's function is the responsible frame.  After each case main scrubs 64 KiB of stack below its frame,
 * so that no dead frame of a case lies under a live frame of a later call
 * (the wait below).  The sizes are odd ones nothing else in the process asks
 * for.
 *
 * Usage: reach --wait-dir DIR
 *   prints one line per case (the truth, format below), then
 *   "reach ready pid=P", and waits until the file DIR\go exists; then exits 0
 *   without freeing anything.
 *
 * Truth lines (read by tracker/check_dump.py --truth, which checks size,
 * count, kind and addrs, and by tests/it/reach_wine.rs, which checks the
 * classes):
 *   truth CASE size=S count=N kind=crt function=F bytes=B unreachable=U
 *         unreferenced=R reachable=H held_by_untracked=0
 *         [holder=ROOT] holder_kind=global|stack|none addrs=0xA,0xB,...
 * (one line; CASE is the function's name; addresses are the blocks malloc
 * returned, in allocation order).
 */
#include <windows.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NOINLINE __attribute__((noinline))

enum { LEAKS = 40, CACHED = 30, REQUESTS = 20, NODES = 25 };
enum { LEAK_SIZE = 1001, CACHE_SIZE = 2003, REQUEST_SIZE = 3005, NODE_SIZE = 1607,
       CYCLE_SIZE = 1709 };

void *g_cache[CACHED];                  /* the global that holds the cache */
static const char *g_wait_dir;

/* The truth of one case, printed as text (no binary copy of an address is
 * kept anywhere: the text is ASCII). */
static NOINLINE void truth(const char *fn, size_t size, int count, int unreachable,
                           int unreferenced, int reachable, const char *holder,
                           const char *holder_kind, void *const *addrs)
{
    printf("truth %s size=%zu count=%d kind=crt function=%s bytes=%zu unreachable=%d "
           "unreferenced=%d reachable=%d held_by_untracked=0",
           fn, size, count, fn, size * (size_t)count, unreachable, unreferenced, reachable);
    if (holder) printf(" holder=%s", holder);
    printf(" holder_kind=%s addrs=", holder_kind);
    for (int i = 0; i < count; i++)
        printf("%s0x%llx", i ? "," : "", (unsigned long long)(uintptr_t)addrs[i]);
    printf("\n");
}

/* msvcr120.dll's malloc (see high_heap). */
static void *(__cdecl *crt_malloc)(size_t);

/* Allocates in the calling function (a macro: -O0 does not inline, and the
 * function that calls malloc is the one a report names). */
#define FILLED(dst, size)                                                        \
    do {                                                                         \
        void *p_ = crt_malloc(size);                                             \
        if (!p_) { fprintf(stderr, "reach: malloc(%d) failed\n", (int)(size)); exit(3); } \
        memset(p_, 0x5A, (size));                                                \
        (dst) = p_;                                                              \
        p_ = NULL;                                                               \
    } while (0)

/* Reserves every free range below 4 GiB, loads msvcr120.dll (whose heap is
 * created in its DllMain, so above 4 GiB), releases the ranges again. */
static NOINLINE int high_heap(void)
{
    static void *res[4096];
    int n = 0;
    SIZE_T chunk = (SIZE_T)1 << 30;
    while (chunk >= 65536 && n < 4096) {
        void *p = VirtualAlloc(NULL, chunk, MEM_RESERVE, PAGE_NOACCESS);
        if (p && (uintptr_t)p + chunk <= ((uintptr_t)1 << 32)) { res[n++] = p; continue; }
        if (p) VirtualFree(p, 0, MEM_RELEASE);
        chunk >>= 1;
    }
    HMODULE crt = LoadLibraryA("msvcr120.dll");
    if (crt) crt_malloc = (void *(__cdecl *)(size_t))(void *)GetProcAddress(crt, "malloc");
    for (int i = 0; i < n; i++) VirtualFree(res[i], 0, MEM_RELEASE);
    memset(res, 0, sizeof res);
    if (!crt_malloc) { fprintf(stderr, "reach: msvcr120.dll!malloc not found\n"); return 0; }
    return 1;
}

/* a. 40 blocks whose every pointer is dropped before the function returns. */
static NOINLINE void leak_drop(void)
{
    void *volatile blocks[LEAKS];
    for (int i = 0; i < LEAKS; i++) FILLED(blocks[i], LEAK_SIZE);
    truth("leak_drop", LEAK_SIZE, LEAKS, LEAKS, LEAKS, 0, NULL, "none", (void *const *)blocks);
    for (int i = 0; i < LEAKS; i++) blocks[i] = NULL;
}

/* b. 30 blocks held by the global array g_cache. */
static NOINLINE void cache_fill(void)
{
    for (int i = 0; i < CACHED; i++) FILLED(g_cache[i], CACHE_SIZE);
    truth("cache_fill", CACHE_SIZE, CACHED, 0, 0, CACHED, "reach.exe!g_cache", "global", g_cache);
}

/* c. 20 blocks held by main's local array `slots`. */
static NOINLINE void requests_in_main(void *volatile *slots)
{
    for (int i = 0; i < REQUESTS; i++) FILLED(slots[i], REQUEST_SIZE);
    truth("requests_in_main", REQUEST_SIZE, REQUESTS, 0, 0, REQUESTS, NULL, "stack",
          (void *const *)slots);
}

/* d. A singly linked list of 25 nodes; the head pointer is dropped. */
struct node { struct node *next; };

static NOINLINE void list_build(void)
{
    void *volatile nodes[NODES];
    for (int i = 0; i < NODES; i++) FILLED(nodes[i], NODE_SIZE);
    for (int i = 0; i < NODES; i++)
        ((struct node *)nodes[i])->next = i + 1 < NODES ? (struct node *)nodes[i + 1] : NULL;
    truth("list_build", NODE_SIZE, NODES, NODES, 1, 0, NULL, "none", (void *const *)nodes);
    for (int i = 0; i < NODES; i++) nodes[i] = NULL;
}

/* e. Two blocks pointing at each other, both dropped. */
static NOINLINE void cycle_build(void)
{
    void *volatile pair[2];
    FILLED(pair[0], CYCLE_SIZE);
    FILLED(pair[1], CYCLE_SIZE);
    ((struct node *)pair[0])->next = (struct node *)pair[1];
    ((struct node *)pair[1])->next = (struct node *)pair[0];
    truth("cycle_build", CYCLE_SIZE, 2, 2, 0, 0, NULL, "none", (void *const *)pair);
    pair[0] = pair[1] = NULL;
}

/* Zeroes 64 KiB of stack below the caller's frame: the dead frames of the
 * cases (and of printf and malloc inside them) lie there. */
static NOINLINE void scrub_stack(void)
{
    volatile unsigned char area[64 * 1024];
    for (size_t i = 0; i < sizeof area; i++) area[i] = 0;
}

static NOINLINE void wait_go(void)
{
    char path[MAX_PATH];
    snprintf(path, sizeof path, "%s\\go", g_wait_dir);
    for (int i = 0; i < 30000; i++) {               /* 600 s at most */
        if (GetFileAttributesA(path) != INVALID_FILE_ATTRIBUTES) return;
        Sleep(20);
    }
    fprintf(stderr, "reach: timed out waiting for %s\n", path);
    exit(4);
}

int main(int argc, char **argv)
{
    void *volatile requests[REQUESTS];      /* c: held by main's frame */
    for (int i = 1; i + 1 < argc; i++)
        if (strcmp(argv[i], "--wait-dir") == 0) g_wait_dir = argv[i + 1];
    if (!g_wait_dir) { fprintf(stderr, "usage: reach --wait-dir DIR\n"); return 2; }
    setvbuf(stdout, NULL, _IONBF, 0);
    if (!high_heap()) return 3;
    scrub_stack();
    leak_drop();
    scrub_stack();
    cache_fill();
    scrub_stack();
    requests_in_main(requests);
    scrub_stack();
    list_build();
    scrub_stack();
    cycle_build();
    scrub_stack();
    printf("reach ready pid=%lu\n", GetCurrentProcessId());
    scrub_stack();
    wait_go();
    /* keep main's array alive (and in memory) until the end */
    for (int i = 0; i < REQUESTS; i++) (void)requests[i];
    return 0;
}
