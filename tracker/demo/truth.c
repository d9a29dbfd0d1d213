/*
 * truth.c - test program that prints its own truth about its blocks.
 *
 * Each scenario allocates and frees through one path and then prints what
 * must be outstanding, as lines read by check_dump.py --truth:
 *     truth NAME size=S count=N kind=K [addrs=0x...,0x...]
 * (exactly N records of size S, all of allocator kind K, at those addresses).
 * Every scenario uses sizes that nothing else in the process asks for, so a
 * record of that size can only be the scenario's block.  Addresses are those
 * of the heap block (for a BSTR, one pointer before the string).
 *
 * Modes (first argument):
 *   scenarios --wait-dir DIR   every row of issue 11's table, then prints
 *                              "scenarios done pid=P" and waits for DIR\go
 *   stress --wait-dir DIR      8 threads, blocks freed on other threads;
 *                              prints "stress running pid=P", runs until
 *                              DIR\stop exists (dumps are taken meanwhile),
 *                              settles, prints "stress done" and waits for DIR\go
 *   full N --wait-dir DIR      keeps N blocks of 7401 bytes (table-full run)
 *   exit-after MS              prints "pid=P" and exits after MS ms
 */
#include <windows.h>
#include <objbase.h>
#include <oleauto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *g_wait_dir;

static void wait_file(const char *name)
{
    char path[MAX_PATH];
    snprintf(path, sizeof path, "%s\\%s", g_wait_dir, name);
    for (int i = 0; i < 12000; i++) {               /* 240 s at most */
        if (GetFileAttributesA(path) != INVALID_FILE_ATTRIBUTES) return;
        Sleep(20);
    }
    fprintf(stderr, "truth: timed out waiting for %s\n", path);
    exit(4);
}

/* truth line with addresses */
static void truth(const char *name, size_t size, int count, const char *kind, void **addrs, int naddrs)
{
    printf("truth ");
    for (const char *c = name; *c; c++) putchar(*c == ' ' ? '_' : *c);
    printf(" size=%zu count=%d kind=%s", size, count, kind);
    if (naddrs > 0) {
        printf(" addrs=");
        for (int i = 0; i < naddrs; i++) printf("%s%p", i ? "," : "", addrs[i]);
    }
    printf("\n");
}

static FARPROC proc(const char *dll, const char *name)
{
    HMODULE m = LoadLibraryA(dll);
    return m ? GetProcAddress(m, name) : NULL;
}

/* ---- rows of the table ---------------------------------------------- */

static void local_global(void)
{
    for (int i = 0; i < 20; i++) {
        HLOCAL a = LocalAlloc(LMEM_FIXED, 7001);
        HLOCAL b = LocalAlloc(LMEM_MOVEABLE, 7003);
        if (!a || !b || LocalFree(a) || LocalFree(b)) { printf("error LocalAlloc/LocalFree\n"); }
        HGLOBAL c = GlobalAlloc(GMEM_FIXED, 7005);
        HGLOBAL d = GlobalAlloc(GMEM_MOVEABLE, 7007);
        if (!c || !d || GlobalFree(c) || GlobalFree(d)) { printf("error GlobalAlloc/GlobalFree\n"); }
    }
    truth("LocalAlloc+LocalFree(fixed)", 7001, 0, "local", NULL, 0);
    truth("LocalAlloc+LocalFree(moveable)", 7003, 0, "local", NULL, 0);
    truth("GlobalAlloc+GlobalFree(fixed)", 7005, 0, "local", NULL, 0);
    truth("GlobalAlloc+GlobalFree(moveable)", 7007, 0, "local", NULL, 0);
    void *keep[2];
    keep[0] = LocalAlloc(LMEM_FIXED, 7009);
    keep[1] = LocalAlloc(LMEM_FIXED, 7009);
    truth("LocalAlloc(kept)", 7009, 2, "local", keep, 2);
    keep[0] = GlobalAlloc(GMEM_FIXED, 7011);
    keep[1] = GlobalAlloc(GMEM_FIXED, 7011);
    truth("GlobalAlloc(kept)", 7011, 2, "local", keep, 2);
}

static void heap_destroy(void)
{
    HANDLE h = HeapCreate(0, 0, 0);
    for (int i = 0; i < 10; i++) HeapAlloc(h, 0, 7013);
    void *big = HeapAlloc(h, 0, 1 << 20);            /* a large block too */
    (void)big;
    if (!HeapDestroy(h)) printf("error HeapDestroy\n");
    truth("HeapDestroy(10 live blocks)", 7013, 0, "heap", NULL, 0);
    truth("HeapDestroy(large block)", 1 << 20, 0, "heap", NULL, 0);
}

static void wrong_heap(void)
{
    HANDLE h1 = HeapCreate(0, 0, 0), h2 = HeapCreate(0, 0, 0);
    void *p = HeapAlloc(h1, 0, 7015);
    BOOL freed = HeapFree(h2, 0, p);                 /* wrong heap */
    int live = HeapSize(h1, 0, p) == 7015;
    printf("HeapFree(wrong heap) returned %d; block live: %d\n", freed, live);
    truth("HeapFree(wrong heap)", 7015, live, "heap", &p, live);
}

static void foreign_crt(void)
{
    void *(__cdecl *ms_malloc)(size_t) = (void *)proc("msvcrt.dll", "malloc");
    size_t (__cdecl *ms_msize)(void *) = (void *)proc("msvcrt.dll", "_msize");
    void (__cdecl *u_free)(void *) = (void *)proc("ucrtbase.dll", "free");
    if (!ms_malloc || !ms_msize || !u_free) { printf("error: CRT functions missing\n"); return; }
    void *p = ms_malloc(7019);
    u_free(p);                                       /* ucrtbase's free: not its block */
    int live = ms_msize(p) == 7019;
    printf("ucrtbase free(msvcrt block): block live: %d\n", live);
    truth("msvcrt block freed by ucrtbase free", 7019, live, "crt", &p, live);
}

static void getprocaddress(void)
{
    LPVOID (WINAPI *heap_alloc)(HANDLE, DWORD, SIZE_T) = (void *)proc("kernel32.dll", "HeapAlloc");
    PVOID (NTAPI *rtl_alloc)(PVOID, ULONG, SIZE_T) = (void *)proc("ntdll.dll", "RtlAllocateHeap");
    void *a[5], *b[5];
    for (int i = 0; i < 5; i++) a[i] = heap_alloc(GetProcessHeap(), 0, 7021);
    for (int i = 0; i < 5; i++) b[i] = rtl_alloc(GetProcessHeap(), 0, 7023);
    truth("HeapAlloc via GetProcAddress", 7021, 5, "heap", a, 5);
    truth("RtlAllocateHeap via GetProcAddress", 7023, 5, "heap", b, 5);
}

static void apiset_dll(void)
{
    HMODULE m = LoadLibraryA("apisetvend.dll");
    int (*work)(void **, int) = m ? (void *)GetProcAddress(m, "ApiSetWork") : NULL;
    if (!work) { printf("error: apisetvend.dll (error %lu)\n", GetLastError()); return; }
    void *regions[3];
    int n = work(regions, 3);
    truth("api-ms-win-core-memory VirtualAlloc (kept)", 70250, n, "virtual", regions, n);
    truth("api-ms-win-core-heap HeapAlloc+HeapFree", 7027, 0, "heap", NULL, 0);
}

static void *bstr_block(BSTR b) { return (char *)b - sizeof(void *); }

static void bstr(void)
{
    void *keep[3];
    for (int i = 0; i < 3; i++) keep[i] = bstr_block(SysAllocStringByteLen(NULL, 7029));
    truth("SysAllocStringByteLen (kept)", 7029, 3, "bstr", keep, 3);
    static WCHAR s1[3541], s2[3546];                 /* 7080 and 7090 bytes */
    for (int i = 0; i < 3540; i++) s1[i] = L'a';
    for (int i = 0; i < 3545; i++) s2[i] = L'b';
    for (int round = 0; round < 3; round++) {        /* later rounds may be served by the cache */
        BSTR b = SysAllocStringLen(NULL, 3515);      /* 7030 bytes */
        if (!SysReAllocStringLen(&b, NULL, 3516)) printf("error SysReAllocStringLen\n");
        SysFreeString(b);
        BSTR c = SysAllocString(s1);
        if (!SysReAllocString(&c, s2)) printf("error SysReAllocString\n");
        SysFreeString(c);
    }
    truth("SysAllocStringLen+SysReAllocStringLen+SysFreeString", 7030, 0, "bstr", NULL, 0);
    truth("(same, after realloc)", 7032, 0, "bstr", NULL, 0);
    truth("SysAllocString+SysReAllocString+SysFreeString", 7080, 0, "bstr", NULL, 0);
    truth("(same, after realloc)", 7090, 0, "bstr", NULL, 0);
    void *k = bstr_block(SysAllocStringLen(NULL, 3514));   /* the cache may hand back a freed one */
    truth("SysAllocStringLen (kept, maybe from the cache)", 7028, 1, "bstr", &k, 1);
}

static void dllmain_later(void)
{
    HMODULE m = LoadLibraryA("latedll.dll");
    void **(*blocks)(void) = m ? (void *)GetProcAddress(m, "LateBlocks") : NULL;
    if (!blocks) { printf("error: latedll.dll (error %lu)\n", GetLastError()); return; }
    truth("DllMain of a DLL loaded later", 7035, 3, "heap", blocks(), 3);
}

static void realloc_exact(void)
{
    char *p = malloc(7501);
    p = realloc(p, 7503);
    p = realloc(p, 70505);                           /* grows: most likely moves */
    void *kp = p;
    truth("malloc", 7501, 0, "crt", NULL, 0);
    truth("realloc", 7503, 0, "crt", NULL, 0);
    truth("realloc (moved)", 70505, 1, "crt", &kp, 1);
    HANDLE h = GetProcessHeap();
    void *q = HeapAlloc(h, 0, 7509);
    void *q2 = HeapReAlloc(h, HEAP_REALLOC_IN_PLACE_ONLY, q, 7507);
    printf("HeapReAlloc in place: %s\n", q2 == q ? "same address" : "failed");
    void *kq = q2 ? q2 : q;
    truth("HeapReAlloc in place (before)", 7509, q2 ? 0 : 1, "heap", q2 ? NULL : &kq, q2 ? 0 : 1);
    truth("HeapReAlloc in place (after)", 7507, q2 ? 1 : 0, "heap", q2 ? &kq : NULL, q2 ? 1 : 0);
    void *fail = HeapReAlloc(h, HEAP_REALLOC_IN_PLACE_ONLY, kq, 64 << 20);   /* cannot grow in place */
    printf("HeapReAlloc in place to 64 MiB: %s\n", fail ? "succeeded" : "failed");
    void *a = _aligned_malloc(7511, 64);
    truth("_aligned_malloc (kept)", 7511, a ? 1 : 0, "crt", NULL, 0);
    _aligned_free(_aligned_malloc(7513, 64));
    truth("_aligned_malloc+_aligned_free", 7513, 0, "crt", NULL, 0);
    void *t[3];
    t[0] = CoTaskMemAlloc(7515);
    IMalloc *im = NULL;
    if (CoGetMalloc(1, &im) == S_OK) t[1] = im->lpVtbl->Alloc(im, 7517);
    t[2] = CoTaskMemRealloc(CoTaskMemAlloc(7519), 7521);
    truth("CoTaskMemAlloc (kept)", 7515, 1, "cotask", &t[0], 1);
    truth("IMalloc::Alloc (kept)", 7517, 1, "cotask", &t[1], 1);
    truth("CoTaskMemAlloc then CoTaskMemRealloc", 7519, 0, "cotask", NULL, 0);
    truth("(after realloc)", 7521, 1, "cotask", &t[2], 1);
    void *v = VirtualAlloc(NULL, 70523, MEM_RESERVE | MEM_COMMIT, PAGE_READWRITE);
    VirtualFree(VirtualAlloc(NULL, 70525, MEM_RESERVE | MEM_COMMIT, PAGE_READWRITE), 0, MEM_RELEASE);
    void *r = VirtualAlloc(NULL, 70527, MEM_RESERVE, PAGE_READWRITE);
    VirtualAlloc(r, 4096, MEM_COMMIT, PAGE_READWRITE);      /* commit inside: same region */
    VirtualFree(r, 4096, MEM_DECOMMIT);                     /* decommit: still reserved */
    truth("VirtualAlloc (kept)", 70523, 1, "virtual", &v, 1);
    truth("VirtualAlloc+VirtualFree(MEM_RELEASE)", 70525, 0, "virtual", NULL, 0);
    truth("VirtualAlloc reserve, commit, decommit", 70527, 1, "virtual", &r, 1);
}

/* Every allocation entry point we know of, called through GetProcAddress from
 * each DLL that exports it; each keeps one block of a size of its own.  The
 * dump must list each one with its family. */
typedef struct entry { const char *dll, *name, *kind; int call; } entry;
enum { C_MALLOC, C_CALLOC, C_REALLOC, C_ALIGNED, C_HEAP, C_RTLHEAP, C_LOCAL, C_GLOBAL,
       C_COTASK, C_BSTRBYTE, C_VIRTUAL, C_NEW };
static const entry g_entries[] = {
    { "kernel32.dll", "HeapAlloc", "heap", C_HEAP },
    { "kernelbase.dll", "HeapAlloc", "heap", C_HEAP },
    { "api-ms-win-core-heap-l1-1-0.dll", "HeapAlloc", "heap", C_HEAP },
    { "api-ms-win-core-heap-l1-2-0.dll", "HeapAlloc", "heap", C_HEAP },
    { "ntdll.dll", "RtlAllocateHeap", "heap", C_RTLHEAP },
    { "kernel32.dll", "LocalAlloc", "local", C_LOCAL },
    { "kernelbase.dll", "LocalAlloc", "local", C_LOCAL },
    { "api-ms-win-core-heap-l2-1-0.dll", "LocalAlloc", "local", C_LOCAL },
    { "kernel32.dll", "GlobalAlloc", "local", C_GLOBAL },
    { "kernelbase.dll", "GlobalAlloc", "local", C_GLOBAL },
    { "api-ms-win-core-heap-l2-1-0.dll", "GlobalAlloc", "local", C_GLOBAL },
    { "kernel32.dll", "VirtualAlloc", "virtual", C_VIRTUAL },
    { "kernelbase.dll", "VirtualAlloc", "virtual", C_VIRTUAL },
    { "api-ms-win-core-memory-l1-1-0.dll", "VirtualAlloc", "virtual", C_VIRTUAL },
    { "msvcrt.dll", "malloc", "crt", C_MALLOC },
    { "msvcrt.dll", "calloc", "crt", C_CALLOC },
    { "msvcrt.dll", "realloc", "crt", C_REALLOC },
    { "msvcrt.dll", "_aligned_malloc", "crt", C_ALIGNED },
    { "msvcrt.dll", "??2@YAPEAX_K@Z", "crt", C_NEW },
    { "ucrtbase.dll", "malloc", "crt", C_MALLOC },
    { "ucrtbase.dll", "calloc", "crt", C_CALLOC },
    { "ucrtbase.dll", "realloc", "crt", C_REALLOC },
    { "ucrtbase.dll", "_aligned_malloc", "crt", C_ALIGNED },
    { "api-ms-win-crt-heap-l1-1-0.dll", "malloc", "crt", C_MALLOC },
    { "api-ms-win-crt-heap-l1-1-0.dll", "calloc", "crt", C_CALLOC },
    { "msvcr120.dll", "malloc", "crt", C_MALLOC },
    { "msvcr120.dll", "??2@YAPEAX_K@Z", "crt", C_NEW },
    { "msvcr110.dll", "malloc", "crt", C_MALLOC },
    { "msvcr100.dll", "malloc", "crt", C_MALLOC },
    { "msvcr90.dll", "malloc", "crt", C_MALLOC },
    { "msvcp140.dll", "??2@YAPEAX_K@Z", "crt", C_NEW },
    { "vcruntime140.dll", "malloc", "crt", C_MALLOC },
    { "ole32.dll", "CoTaskMemAlloc", "cotask", C_COTASK },
    { "combase.dll", "CoTaskMemAlloc", "cotask", C_COTASK },
    { "oleaut32.dll", "SysAllocStringByteLen", "bstr", C_BSTRBYTE },
};

static void audit(void)
{
    int called = 0, absent = 0;
    for (size_t i = 0; i < sizeof g_entries / sizeof g_entries[0]; i++) {
        const entry *e = &g_entries[i];
        size_t size = 7601 + 2 * i;
        FARPROC f = proc(e->dll, e->name);
        char name[160];
        snprintf(name, sizeof name, "audit:%s!%s", e->dll, e->name);
        if (!f) { printf("audit: %s not exported here\n", name); absent++; continue; }
        void *p = NULL;
        int exact_addr = 1;
        switch (e->call) {
        case C_MALLOC:  p = ((void *(__cdecl *)(size_t))f)(size); break;
        case C_NEW:     p = ((void *(__cdecl *)(size_t))f)(size); break;
        case C_CALLOC:  p = ((void *(__cdecl *)(size_t, size_t))f)(1, size); break;
        case C_REALLOC: p = ((void *(__cdecl *)(void *, size_t))f)(NULL, size); break;
        case C_ALIGNED: p = ((void *(__cdecl *)(size_t, size_t))f)(size, 64); exact_addr = 0; break;
        case C_HEAP:    p = ((LPVOID (WINAPI *)(HANDLE, DWORD, SIZE_T))f)(GetProcessHeap(), 0, size); break;
        case C_RTLHEAP: p = ((PVOID (NTAPI *)(PVOID, ULONG, SIZE_T))f)(GetProcessHeap(), 0, size); break;
        case C_LOCAL:   p = ((HLOCAL (WINAPI *)(UINT, SIZE_T))f)(LMEM_FIXED, size); break;
        case C_GLOBAL:  p = ((HGLOBAL (WINAPI *)(UINT, SIZE_T))f)(GMEM_FIXED, size); break;
        case C_COTASK:  p = ((LPVOID (WINAPI *)(SIZE_T))f)(size); break;
        case C_BSTRBYTE: {
            BSTR b = ((BSTR (WINAPI *)(LPCSTR, UINT))f)(NULL, (UINT)size);
            p = b ? bstr_block(b) : NULL;
            break;
        }
        case C_VIRTUAL: p = ((LPVOID (WINAPI *)(LPVOID, SIZE_T, DWORD, DWORD))f)(NULL, size, MEM_RESERVE | MEM_COMMIT, PAGE_READWRITE); break;
        }
        if (!p) { printf("audit: %s failed\n", name); continue; }
        called++;
        truth(name, size, 1, e->kind, exact_addr ? &p : NULL, exact_addr);
    }
    printf("audit: %d entry points called, %d not exported by this system\n", called, absent);
}

/* ---- stress ---------------------------------------------------------- */
/* 8 threads, each handing transient blocks (malloc and HeapAlloc) to the next
 * thread, which frees them; every 1000th round a block is kept.  Runs until
 * the file "stop" appears (dumps are taken meanwhile) and at least
 * MIN_ROUNDS rounds were done. */
#define THREADS 8
#define MIN_ROUNDS 20000
#define KEEP_EVERY 1000
#define MAX_KEPT 4096
typedef struct mailbox { void *volatile slot[64]; } mailbox;
static mailbox g_box[THREADS];
static void *g_kept[THREADS][MAX_KEPT];
static int g_nkept[THREADS];
static volatile LONG g_stop;

static void free_tagged(void *p)
{
    if (!p) return;
    if (*(char *)p == 'H') HeapFree(GetProcessHeap(), 0, p); else free(p);
}

static DWORD WINAPI stress_thread(LPVOID arg)
{
    int t = (int)(intptr_t)arg;
    mailbox *next = &g_box[(t + 1) % THREADS], *mine = &g_box[t];
    HANDLE heap = GetProcessHeap();
    for (int r = 0; r < MIN_ROUNDS || !g_stop; r++) {
        char *p = (r & 1) ? malloc(7301 + 2 * t) : HeapAlloc(heap, 0, 7301 + 2 * t);
        if (!p) continue;
        p[0] = (r & 1) ? 'M' : 'H';
        free_tagged(InterlockedExchangePointer(&next->slot[r % 64], p));
        free_tagged(InterlockedExchangePointer(&mine->slot[(r + 7) % 64], NULL));
        if (r % KEEP_EVERY == 0 && g_nkept[t] < MAX_KEPT) g_kept[t][g_nkept[t]++] = malloc(7201 + 2 * t);
    }
    return 0;
}

static void stress(void)
{
    HANDLE th[THREADS];
    for (int t = 0; t < THREADS; t++) th[t] = CreateThread(NULL, 0, stress_thread, (LPVOID)(intptr_t)t, 0, NULL);
    printf("stress running pid=%lu\n", GetCurrentProcessId());
    wait_file("stop");
    InterlockedExchange(&g_stop, 1);
    WaitForMultipleObjects(THREADS, th, TRUE, INFINITE);
    for (int t = 0; t < THREADS; t++)
        for (int s = 0; s < 64; s++) free_tagged(InterlockedExchangePointer(&g_box[t].slot[s], NULL));
    for (int t = 0; t < THREADS; t++) {
        char name[64];
        snprintf(name, sizeof name, "stress thread %d kept", t);
        truth(name, 7201 + 2 * t, g_nkept[t], "crt", g_kept[t], g_nkept[t]);
        snprintf(name, sizeof name, "stress thread %d transient", t);
        truth(name, 7301 + 2 * t, 0, "crt", NULL, 0);
    }
}

int main(int argc, char **argv)
{
    if (argc < 2) { fprintf(stderr, "usage: truth scenarios|stress|full N|exit-after MS [--wait-dir DIR]\n"); return 2; }
    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], "--wait-dir") == 0 && i + 1 < argc) g_wait_dir = argv[i + 1];
    setvbuf(stdout, NULL, _IONBF, 0);
    if (strcmp(argv[1], "exit-after") == 0 && argc > 2) {
        printf("pid=%lu\n", GetCurrentProcessId());
        Sleep((DWORD)atoi(argv[2]));
        return 0;
    }
    if (!g_wait_dir) { fprintf(stderr, "truth: --wait-dir DIR needed\n"); return 2; }
    if (strcmp(argv[1], "scenarios") == 0) {
        CoInitialize(NULL);
        local_global();
        heap_destroy();
        wrong_heap();
        foreign_crt();
        getprocaddress();
        apiset_dll();
        bstr();
        dllmain_later();
        realloc_exact();
        audit();
        printf("scenarios done pid=%lu\n", GetCurrentProcessId());
        wait_file("go");
        return 0;
    }
    if (strcmp(argv[1], "stress") == 0) {
        stress();
        printf("stress done pid=%lu\n", GetCurrentProcessId());
        wait_file("go");
        return 0;
    }
    if (strcmp(argv[1], "full") == 0 && argc > 2) {
        int n = atoi(argv[2]);
        static void *volatile sink;          /* keeps clang from dropping the calls */
        for (int i = 0; i < n; i++) sink = malloc(7401);
        (void)sink;
        printf("truth-dropped held=%d size=7401\n", n);
        printf("full done pid=%lu\n", GetCurrentProcessId());
        wait_file("go");
        return 0;
    }
    fprintf(stderr, "truth: unknown mode %s\n", argv[1]);
    return 2;
}
