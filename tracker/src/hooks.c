/*
 * hooks.c - inline hooks (MinHook) at the layer every allocation goes through.
 *
 * Recording hooks, in ntdll (every heap and virtual-memory path ends there,
 * whatever module, import table, API set, GetProcAddress or delay-load the
 * caller used):
 *   RtlAllocateHeap, RtlReAllocateHeap, RtlFreeHeap, RtlDestroyHeap,
 *   NtAllocateVirtualMemory, NtFreeVirtualMemory (own process only),
 *   RtlCreateHeap (only guarded: a heap's own region is not a block).
 * A block is forgotten only after the real free succeeded, and only if its
 * record is still the one looked up before the call (table.c, sequence
 * numbers).  RtlDestroyHeap forgets every block of the heap.
 *
 * Labelling hooks, higher up (C runtimes, LocalAlloc/GlobalAlloc, COM task
 * memory, BSTRs): they record nothing themselves but tell the ntdll hook, in
 * a per-thread word, which family the allocation belongs to and the size the
 * caller asked for; the first heap block made inside such a call gets that
 * family and size, anything else made inside gets the family and its own
 * size.  The outermost label wins (SysAllocString -> CoTaskMemAlloc ->
 * HeapAlloc is a BSTR).  BSTRs also need real work here: oleaut32 keeps freed
 * BSTRs in a cache instead of freeing them, and hands them out again without
 * a heap call, so SysFreeString forgets the block and SysAlloc* records a
 * block that came from the cache.  Labels are installed for modules loaded
 * later too (LdrLoadDll hook).
 *
 * Per-thread state lives in two TLS slots read straight from the TEB (no API
 * call, nothing that could allocate): flags (busy, inner, label) and the
 * requested size.  "busy" is the recursion guard: while set, hooks call
 * straight through (the tracker's own work, and allocations nested inside an
 * allocation, e.g. the heap's own NtAllocateVirtualMemory).
 */
#include "ldtrack.h"
#include "MinHook.h"
#include <intrin.h>
#include <wchar.h>
#include <string.h>
#include <stdio.h>

static DWORD   g_tls_flags = TLS_OUT_OF_INDEXES, g_tls_req = TLS_OUT_OF_INDEXES;
static volatile LONG g_active;            /* 1 once tables and hooks are ready */
static CRITICAL_SECTION g_install_cs;     /* serializes installing hooks */
static int     g_dump_at_exit;

#define F_BUSY  0x1u
#define F_INNER 0x2u                      /* a labelled call made its first heap block */
#define LABEL(f) (((f) >> 8) & 0xFFu)

#ifdef _WIN64
static __inline uintptr_t tls_get(DWORD i) { return (uintptr_t)__readgsqword(0x1480 + i * 8); }
static __inline void tls_set(DWORD i, uintptr_t v) { __writegsqword(0x1480 + i * 8, v); }
#else
static __inline uintptr_t tls_get(DWORD i) { return (uintptr_t)__readfsdword(0xE10 + i * 4); }
static __inline void tls_set(DWORD i, uintptr_t v) { __writefsdword(0xE10 + i * 4, v); }
#endif

int hooks_guard_enter(void)
{
    if (g_tls_flags == TLS_OUT_OF_INDEXES) return 0;
    uintptr_t f = tls_get(g_tls_flags);
    if (f & F_BUSY) return 0;
    tls_set(g_tls_flags, f | F_BUSY);
    return 1;
}

void hooks_guard_leave(void)
{
    tls_set(g_tls_flags, tls_get(g_tls_flags) & ~(uintptr_t)F_BUSY);
}

/*
 * Stack capture.  Wine's RtlCaptureStackBackTrace spends most of its time
 * finding each frame's function table entry (RtlLookupFunctionEntry walks
 * the module list and searches the module's .pdata).  We unwind the same way
 * (RtlCaptureContext, then RtlVirtualUnwind frame by frame, exactly what
 * RtlCaptureStackBackTrace does) but remember the entry found for each
 * return address in a small lock-free cache.  A cached entry is used only if
 * the address lies inside the function it names (a torn read fails that
 * check and falls back to the lookup); the cache is cleared when a DLL is
 * unloaded.  LDTRACK_UNWIND=system (environment) uses
 * RtlCaptureStackBackTrace instead, for comparison.
 */
#ifdef _WIN64
#define FN_CACHE 8192
typedef struct fn_cache_entry {
    volatile ULONG64 ip;
    PRUNTIME_FUNCTION volatile fn;
    volatile ULONG64 base;
} fn_cache_entry;
static fn_cache_entry g_fn_cache[FN_CACHE];
static int g_system_unwind;

static PRUNTIME_FUNCTION lookup_function(ULONG64 ip, ULONG64 *base)
{
    fn_cache_entry *e = &g_fn_cache[(ip * 0x9E3779B97F4A7C15ull) >> 51];
    ULONG64 cip = e->ip, cbase = e->base;
    PRUNTIME_FUNCTION fn = e->fn;
    if (cip == ip && fn && ip >= cbase + fn->BeginAddress && ip < cbase + fn->EndAddress) {
        *base = cbase;
        return fn;
    }
    fn = RtlLookupFunctionEntry(ip, base, NULL);
    if (fn) {
        e->ip = 0;
        e->fn = fn;
        e->base = *base;
        e->ip = ip;
    }
    return fn;
}

static void fn_cache_clear(void)
{
    for (int i = 0; i < FN_CACHE; i++) g_fn_cache[i].ip = 0;
}

/* Return addresses of the callers, skipping `skip` frames above the caller
 * of this function, innermost first; at most max. */
static __attribute__((noinline)) USHORT capture_stack(ULONG skip, ULONG max, void **frames)
{
    if (g_system_unwind) return RtlCaptureStackBackTrace(skip + 1, max, frames, NULL);
    CONTEXT ctx;
    NT_TIB *tib = (NT_TIB *)NtCurrentTeb();
    ULONG64 lo = (ULONG64)(uintptr_t)tib->StackLimit, hi = (ULONG64)(uintptr_t)tib->StackBase;
    USHORT n = 0;
    RtlCaptureContext(&ctx);
    for (ULONG i = 0; i < skip + 1 + max; i++) {
        ULONG64 base = 0;
        PRUNTIME_FUNCTION fn = lookup_function(ctx.Rip, &base);
        if (fn) {
            /* A function with a frame register (rbp, usually) is unwound from
             * that register: it must point into this stack, or the stack is
             * not one we can walk (code without unwind data below us). */
            DWORD ud = fn->UnwindData;
            if (ud & 1) ud = ((const RUNTIME_FUNCTION *)(uintptr_t)(base + (ud & ~1u)))->UnwindData;
            const BYTE *info = (const BYTE *)(uintptr_t)(base + ud);
            unsigned reg = info[3] & 0x0F;
            if (reg) {
                ULONG64 v = (&ctx.Rax)[reg];   /* Rax..R15 in x64 register order */
                if (v < lo || v > hi) break;
            }
            PVOID handler_data;
            ULONG64 establisher;
            RtlVirtualUnwind(UNW_FLAG_NHANDLER, base, ctx.Rip, fn, &ctx, &handler_data, &establisher, NULL);
        } else {                          /* leaf function: return address on top */
            if (ctx.Rsp < lo || ctx.Rsp + 8 > hi) break;
            ctx.Rip = *(ULONG64 *)(uintptr_t)ctx.Rsp;
            ctx.Rsp += 8;
        }
        if (ctx.Rip == 0 || ctx.Rsp < lo || ctx.Rsp > hi) break;
        if (i > skip) frames[n++] = (void *)(uintptr_t)ctx.Rip;
    }
    return n;
}
#else
static void fn_cache_clear(void) {}
static __attribute__((noinline)) USHORT capture_stack(ULONG skip, ULONG max, void **frames)
{
    return RtlCaptureStackBackTrace(skip + 1, max, frames, NULL);
}
#endif

/* Captures the stack (innermost first; frame 0 is the hook itself, which lies
 * in ldtrack.dll and is skipped by readers via allocator_modules) and records
 * the block.  noinline so the skip count is stable. */
static __attribute__((noinline)) uint64_t record(void *p, uint64_t size, HANDLE heap, uint8_t kind)
{
    void *frames[LD_MAX_DEPTH_LIMIT + 1];
    uint32_t depth = tbl_max_depth();
    USHORT n = capture_stack(1, depth + 1, frames);
    int truncated = n > depth;
    if (truncated) n = (USHORT)depth;
    return tbl_add((uint64_t)(uintptr_t)p, size, (uint64_t)(uintptr_t)heap, kind, frames, n, truncated);
}

/* Family and size for a heap block made now: the label's (first block of a
 * labelled call), else the Win32 heap. */
static uint8_t heap_label(uintptr_t f, uint64_t *size)
{
    uint8_t kind = (uint8_t)LABEL(f);
    if (!kind) return LD_KIND_HEAP;
    if (!(f & F_INNER)) {
        *size = tls_get(g_tls_req);
        tls_set(g_tls_flags, f | F_BUSY | F_INNER);
    }
    return kind;
}

/* ------------------------------------------------------------------ */
/* ntdll: heap                                                          */
typedef PVOID   (NTAPI *RtlAllocateHeap_t)(PVOID, ULONG, SIZE_T);
typedef PVOID   (NTAPI *RtlReAllocateHeap_t)(PVOID, ULONG, PVOID, SIZE_T);
typedef BOOLEAN (NTAPI *RtlFreeHeap_t)(PVOID, ULONG, PVOID);
typedef PVOID   (NTAPI *RtlDestroyHeap_t)(PVOID);
typedef PVOID   (NTAPI *RtlCreateHeap_t)(ULONG, PVOID, SIZE_T, SIZE_T, PVOID, PVOID);
typedef LONG    (NTAPI *NtAllocateVirtualMemory_t)(HANDLE, PVOID *, ULONG_PTR, SIZE_T *, ULONG, ULONG);
typedef LONG    (NTAPI *NtFreeVirtualMemory_t)(HANDLE, PVOID *, SIZE_T *, ULONG);
typedef LONG    (NTAPI *LdrLoadDll_t)(LPCWSTR, DWORD, const void *, HMODULE *);
typedef void    (NTAPI *RtlExitUserProcess_t)(DWORD);
typedef LONG    (NTAPI *LdrUnloadDll_t)(HMODULE);

static RtlAllocateHeap_t   real_RtlAllocateHeap;
static RtlReAllocateHeap_t real_RtlReAllocateHeap;
static RtlFreeHeap_t       real_RtlFreeHeap;
static RtlDestroyHeap_t    real_RtlDestroyHeap;
static RtlCreateHeap_t     real_RtlCreateHeap;
static NtAllocateVirtualMemory_t real_NtAllocateVirtualMemory;
static NtFreeVirtualMemory_t     real_NtFreeVirtualMemory;
static LdrLoadDll_t        real_LdrLoadDll;
static RtlExitUserProcess_t real_RtlExitUserProcess;
static LdrUnloadDll_t      real_LdrUnloadDll;

static PVOID NTAPI hk_RtlAllocateHeap(PVOID heap, ULONG flags, SIZE_T n)
{
    uintptr_t f;
    if (!g_active || ((f = tls_get(g_tls_flags)) & F_BUSY)) return real_RtlAllocateHeap(heap, flags, n);
    tls_set(g_tls_flags, f | F_BUSY);
    PVOID p = real_RtlAllocateHeap(heap, flags, n);
    if (p) {
        DWORD err = GetLastError();
        uint64_t size = n;
        uint8_t kind = heap_label(f, &size);
        record(p, size, heap, kind);
        SetLastError(err);
    }
    tls_set(g_tls_flags, tls_get(g_tls_flags) & ~(uintptr_t)F_BUSY);
    return p;
}

static PVOID NTAPI hk_RtlReAllocateHeap(PVOID heap, ULONG flags, PVOID old, SIZE_T n)
{
    uintptr_t f;
    if (!g_active || ((f = tls_get(g_tls_flags)) & F_BUSY)) return real_RtlReAllocateHeap(heap, flags, old, n);
    tls_set(g_tls_flags, f | F_BUSY);
    uint64_t seq = tbl_lookup((uint64_t)(uintptr_t)old, NULL);
    PVOID p = real_RtlReAllocateHeap(heap, flags, old, n);
    if (p) {
        /* in place or moved: the old record ends, the block is recorded anew
         * (new size, this call's stack); on failure the old record stays */
        DWORD err = GetLastError();
        if (seq) tbl_remove_if((uint64_t)(uintptr_t)old, seq);
        uint64_t size = n;
        uint8_t kind = heap_label(f, &size);
        record(p, size, heap, kind);
        SetLastError(err);
    }
    tls_set(g_tls_flags, tls_get(g_tls_flags) & ~(uintptr_t)F_BUSY);
    return p;
}

static BOOLEAN NTAPI hk_RtlFreeHeap(PVOID heap, ULONG flags, PVOID p)
{
    uintptr_t f;
    if (!g_active || !p || ((f = tls_get(g_tls_flags)) & F_BUSY)) return real_RtlFreeHeap(heap, flags, p);
    tls_set(g_tls_flags, f | F_BUSY);
    uint64_t seq = tbl_lookup((uint64_t)(uintptr_t)p, NULL);
    BOOLEAN ok = real_RtlFreeHeap(heap, flags, p);
    if (ok && seq) tbl_remove_if((uint64_t)(uintptr_t)p, seq);
    tls_set(g_tls_flags, tls_get(g_tls_flags) & ~(uintptr_t)F_BUSY);
    return ok;
}

static PVOID NTAPI hk_RtlDestroyHeap(PVOID heap)
{
    uintptr_t f;
    if (!g_active || ((f = tls_get(g_tls_flags)) & F_BUSY)) return real_RtlDestroyHeap(heap);
    tls_set(g_tls_flags, f | F_BUSY);
    uint64_t marks[LD_SHARDS];
    tbl_mark(marks);
    PVOID r = real_RtlDestroyHeap(heap);
    if (r == NULL) tbl_forget_heap((uint64_t)(uintptr_t)heap, marks);   /* NULL: destroyed */
    tls_set(g_tls_flags, tls_get(g_tls_flags) & ~(uintptr_t)F_BUSY);
    return r;
}

static PVOID NTAPI hk_RtlCreateHeap(ULONG flags, PVOID base, SIZE_T reserve, SIZE_T commit, PVOID lock, PVOID params)
{
    uintptr_t f;
    if (!g_active || ((f = tls_get(g_tls_flags)) & F_BUSY))
        return real_RtlCreateHeap(flags, base, reserve, commit, lock, params);
    tls_set(g_tls_flags, f | F_BUSY);
    PVOID h = real_RtlCreateHeap(flags, base, reserve, commit, lock, params);
    tls_set(g_tls_flags, tls_get(g_tls_flags) & ~(uintptr_t)F_BUSY);
    return h;
}

/* ------------------------------------------------------------------ */
/* ntdll: virtual memory of this process.  A new region is one allocation
 * (reserve, or commit at a system-chosen address); committing inside an
 * existing reservation is not.  MEM_RELEASE ends it; MEM_DECOMMIT does not. */
#define SELF ((HANDLE)(LONG_PTR)-1)

static LONG NTAPI hk_NtAllocateVirtualMemory(HANDLE proc, PVOID *base, ULONG_PTR zero, SIZE_T *size, ULONG type, ULONG prot)
{
    uintptr_t f;
    if (!g_active || proc != SELF || ((f = tls_get(g_tls_flags)) & F_BUSY))
        return real_NtAllocateVirtualMemory(proc, base, zero, size, type, prot);
    tls_set(g_tls_flags, f | F_BUSY);
    PVOID want = *base;
    SIZE_T asked = *size;
    LONG st = real_NtAllocateVirtualMemory(proc, base, zero, size, type, prot);
    if (st >= 0 && (want == NULL || (type & MEM_RESERVE))) {
        DWORD err = GetLastError();
        record(*base, asked, NULL, LD_KIND_VIRTUAL);
        SetLastError(err);
    }
    tls_set(g_tls_flags, tls_get(g_tls_flags) & ~(uintptr_t)F_BUSY);
    return st;
}

static LONG NTAPI hk_NtFreeVirtualMemory(HANDLE proc, PVOID *base, SIZE_T *size, ULONG type)
{
    uintptr_t f;
    if (!g_active || proc != SELF || !(type & MEM_RELEASE) || ((f = tls_get(g_tls_flags)) & F_BUSY))
        return real_NtFreeVirtualMemory(proc, base, size, type);
    tls_set(g_tls_flags, f | F_BUSY);
    uint64_t addr = (uint64_t)(uintptr_t)*base;
    uint64_t seq = tbl_lookup(addr, NULL);
    LONG st = real_NtFreeVirtualMemory(proc, base, size, type);
    if (st >= 0 && seq) tbl_remove_if(addr, seq);
    tls_set(g_tls_flags, tls_get(g_tls_flags) & ~(uintptr_t)F_BUSY);
    return st;
}

/* ------------------------------------------------------------------ */
/* Labels.  label_enter returns 1 if this call set the label (and must clear
 * it), 0 if the thread is busy or inside another labelled call. */
static int label_enter(uint8_t kind, uint64_t req)
{
    if (!g_active) return 0;
    uintptr_t f = tls_get(g_tls_flags);
    if ((f & F_BUSY) || LABEL(f)) return 0;
    tls_set(g_tls_req, (uintptr_t)req);
    tls_set(g_tls_flags, (f & ~(uintptr_t)F_INNER) | ((uintptr_t)kind << 8));
    return 1;
}

/* Clears the label; returns 1 if a heap block was recorded inside. */
static int label_leave(void)
{
    uintptr_t f = tls_get(g_tls_flags);
    tls_set(g_tls_flags, f & ~(uintptr_t)(F_INNER | 0xFF00u));
    return (f & F_INNER) != 0;
}

#define LABEL_CALL(kind, req, call)                                            \
    do {                                                                       \
        int mine_ = label_enter((kind), (uint64_t)(req));                      \
        r = call;                                                              \
        if (mine_) label_leave();                                              \
    } while (0)

/* C runtimes: one set per CRT DLL (each its own trampolines). */
#define CRT_LABELS(tag)                                                                         \
static void *(__cdecl *real_malloc_##tag)(size_t);                                             \
static void *(__cdecl *real_calloc_##tag)(size_t, size_t);                                     \
static void *(__cdecl *real_realloc_##tag)(void *, size_t);                                    \
static void *(__cdecl *real_recalloc_##tag)(void *, size_t, size_t);                           \
static void *(__cdecl *real_aligned_malloc_##tag)(size_t, size_t);                             \
static void *(__cdecl *real_aligned_realloc_##tag)(void *, size_t, size_t);                    \
static char *(__cdecl *real_strdup_##tag)(const char *);                                       \
static wchar_t *(__cdecl *real_wcsdup_##tag)(const wchar_t *);                                 \
static void *(__cdecl *real_new_##tag)(size_t);                                                \
static void *(__cdecl *real_newa_##tag)(size_t);                                               \
static void *__cdecl lb_new_##tag(size_t n)                                                    \
{ void *r; LABEL_CALL(LD_KIND_CRT, n, real_new_##tag(n)); return r; }                          \
static void *__cdecl lb_newa_##tag(size_t n)                                                   \
{ void *r; LABEL_CALL(LD_KIND_CRT, n, real_newa_##tag(n)); return r; }                         \
static void *__cdecl lb_malloc_##tag(size_t n)                                                 \
{ void *r; LABEL_CALL(LD_KIND_CRT, n, real_malloc_##tag(n)); return r; }                       \
static void *__cdecl lb_calloc_##tag(size_t c, size_t n)                                       \
{ void *r; LABEL_CALL(LD_KIND_CRT, (uint64_t)c * n, real_calloc_##tag(c, n)); return r; }      \
static void *__cdecl lb_realloc_##tag(void *p, size_t n)                                       \
{ void *r; LABEL_CALL(LD_KIND_CRT, n, real_realloc_##tag(p, n)); return r; }                   \
static void *__cdecl lb_recalloc_##tag(void *p, size_t c, size_t n)                            \
{ void *r; LABEL_CALL(LD_KIND_CRT, (uint64_t)c * n, real_recalloc_##tag(p, c, n)); return r; } \
static void *__cdecl lb_aligned_malloc_##tag(size_t n, size_t a)                               \
{ void *r; LABEL_CALL(LD_KIND_CRT, n, real_aligned_malloc_##tag(n, a)); return r; }            \
static void *__cdecl lb_aligned_realloc_##tag(void *p, size_t n, size_t a)                     \
{ void *r; LABEL_CALL(LD_KIND_CRT, n, real_aligned_realloc_##tag(p, n, a)); return r; }        \
static char *__cdecl lb_strdup_##tag(const char *s)                                            \
{ char *r; LABEL_CALL(LD_KIND_CRT, s ? strlen(s) + 1 : 0, real_strdup_##tag(s)); return r; }   \
static wchar_t *__cdecl lb_wcsdup_##tag(const wchar_t *s)                                      \
{ wchar_t *r; LABEL_CALL(LD_KIND_CRT, s ? (wcslen(s) + 1) * 2 : 0, real_wcsdup_##tag(s)); return r; }
CRT_LABELS(msvcrt)
CRT_LABELS(ucrt)
CRT_LABELS(msvcr120)
CRT_LABELS(msvcr110)
CRT_LABELS(msvcr100)
CRT_LABELS(msvcr90)

/* LocalAlloc / GlobalAlloc (kernelbase; kernel32's GlobalAlloc may be its own). */
static HLOCAL (WINAPI *real_LocalAlloc)(UINT, SIZE_T);
static HLOCAL (WINAPI *real_LocalReAlloc)(HLOCAL, SIZE_T, UINT);
static HGLOBAL (WINAPI *real_GlobalAlloc)(UINT, SIZE_T);
static HGLOBAL (WINAPI *real_GlobalReAlloc)(HGLOBAL, SIZE_T, UINT);
static HLOCAL WINAPI lb_LocalAlloc(UINT fl, SIZE_T n)
{ HLOCAL r; LABEL_CALL(LD_KIND_LOCAL, n, real_LocalAlloc(fl, n)); return r; }
static HLOCAL WINAPI lb_LocalReAlloc(HLOCAL h, SIZE_T n, UINT fl)
{ HLOCAL r; LABEL_CALL(LD_KIND_LOCAL, n, real_LocalReAlloc(h, n, fl)); return r; }
static HGLOBAL WINAPI lb_GlobalAlloc(UINT fl, SIZE_T n)
{ HGLOBAL r; LABEL_CALL(LD_KIND_LOCAL, n, real_GlobalAlloc(fl, n)); return r; }
static HGLOBAL WINAPI lb_GlobalReAlloc(HGLOBAL h, SIZE_T n, UINT fl)
{ HGLOBAL r; LABEL_CALL(LD_KIND_LOCAL, n, real_GlobalReAlloc(h, n, fl)); return r; }

/* COM task memory: the exports and the task allocator's IMalloc methods. */
static LPVOID (WINAPI *real_CoTaskMemAlloc)(SIZE_T);
static LPVOID (WINAPI *real_CoTaskMemRealloc)(LPVOID, SIZE_T);
static LPVOID (STDMETHODCALLTYPE *real_IMalloc_Alloc)(void *, SIZE_T);
static LPVOID (STDMETHODCALLTYPE *real_IMalloc_Realloc)(void *, LPVOID, SIZE_T);
static LPVOID WINAPI lb_CoTaskMemAlloc(SIZE_T n)
{ LPVOID r; LABEL_CALL(LD_KIND_COTASK, n, real_CoTaskMemAlloc(n)); return r; }
static LPVOID WINAPI lb_CoTaskMemRealloc(LPVOID p, SIZE_T n)
{ LPVOID r; LABEL_CALL(LD_KIND_COTASK, n, real_CoTaskMemRealloc(p, n)); return r; }
static LPVOID STDMETHODCALLTYPE lb_IMalloc_Alloc(void *m, SIZE_T n)
{ LPVOID r; LABEL_CALL(LD_KIND_COTASK, n, real_IMalloc_Alloc(m, n)); return r; }
static LPVOID STDMETHODCALLTYPE lb_IMalloc_Realloc(void *m, LPVOID p, SIZE_T n)
{ LPVOID r; LABEL_CALL(LD_KIND_COTASK, n, real_IMalloc_Realloc(m, p, n)); return r; }

/* BSTRs.  The block starts one pointer before the string (length prefix,
 * and on x64 padding); its size is recorded as the string's byte length. */
typedef WCHAR *BSTR_;
static BSTR_ (WINAPI *real_SysAllocString)(const WCHAR *);
static BSTR_ (WINAPI *real_SysAllocStringLen)(const WCHAR *, UINT);
static BSTR_ (WINAPI *real_SysAllocStringByteLen)(const char *, UINT);
static INT   (WINAPI *real_SysReAllocString)(BSTR_ *, const WCHAR *);
static INT   (WINAPI *real_SysReAllocStringLen)(BSTR_ *, const WCHAR *, UINT);
static void  (WINAPI *real_SysFreeString)(BSTR_);

static uint64_t bstr_block(const void *b) { return (uint64_t)(uintptr_t)b - sizeof(void *); }

/* After a labelled BSTR call that returned b: if no heap block was made
 * inside, b came from oleaut32's cache: record it here. */
static void bstr_done(int mine, BSTR_ b, uint64_t req)
{
    if (!mine) return;
    int inner = label_leave();
    if (b && !inner && hooks_guard_enter()) {
        DWORD err = GetLastError();
        record((void *)(uintptr_t)bstr_block(b), req, NULL, LD_KIND_BSTR);
        SetLastError(err);
        hooks_guard_leave();
    }
}

static BSTR_ WINAPI lb_SysAllocString(const WCHAR *s)
{
    uint64_t req = s ? wcslen(s) * 2 : 0;
    int mine = label_enter(LD_KIND_BSTR, req);
    BSTR_ b = real_SysAllocString(s);
    bstr_done(mine, b, req);
    return b;
}
static BSTR_ WINAPI lb_SysAllocStringLen(const WCHAR *s, UINT len)
{
    int mine = label_enter(LD_KIND_BSTR, (uint64_t)len * 2);
    BSTR_ b = real_SysAllocStringLen(s, len);
    bstr_done(mine, b, (uint64_t)len * 2);
    return b;
}
static BSTR_ WINAPI lb_SysAllocStringByteLen(const char *s, UINT len)
{
    int mine = label_enter(LD_KIND_BSTR, len);
    BSTR_ b = real_SysAllocStringByteLen(s, len);
    bstr_done(mine, b, len);
    return b;
}
static INT WINAPI lb_SysReAllocString(BSTR_ *pb, const WCHAR *s)
{
    uint64_t req = s ? wcslen(s) * 2 : 0;
    int mine = label_enter(LD_KIND_BSTR, req);
    INT ok = real_SysReAllocString(pb, s);
    bstr_done(mine, ok ? *pb : NULL, req);
    return ok;
}
static INT WINAPI lb_SysReAllocStringLen(BSTR_ *pb, const WCHAR *s, UINT len)
{
    int mine = label_enter(LD_KIND_BSTR, (uint64_t)len * 2);
    INT ok = real_SysReAllocStringLen(pb, s, len);
    bstr_done(mine, ok ? *pb : NULL, (uint64_t)len * 2);
    return ok;
}
static void WINAPI lb_SysFreeString(BSTR_ b)
{
    if (!b || !g_active || !hooks_guard_enter()) { real_SysFreeString(b); return; }
    uint64_t seq = tbl_lookup(bstr_block(b), NULL);
    hooks_guard_leave();                 /* the inner RtlFreeHeap, if any, is seen */
    real_SysFreeString(b);
    /* freed or cached: either way the program gave it up */
    if (seq && hooks_guard_enter()) {
        tbl_remove_if(bstr_block(b), seq);
        hooks_guard_leave();
    }
}

/* ------------------------------------------------------------------ */
/* Loader and exit. */
static void install_labels(void);

static LONG NTAPI hk_LdrLoadDll(LPCWSTR path, DWORD flags, const void *name, HMODULE *mod)
{
    LONG st = real_LdrLoadDll(path, flags, name, mod);
    if (st >= 0 && g_active && hooks_guard_enter()) {
        DWORD err = GetLastError();
        install_labels();
        SetLastError(err);
        hooks_guard_leave();
    }
    return st;
}

static LONG NTAPI hk_LdrUnloadDll(HMODULE m)
{
    LONG st = real_LdrUnloadDll(m);
    fn_cache_clear();                    /* its function entries may be gone */
    return st;
}

static void NTAPI hk_RtlExitUserProcess(DWORD code)
{
    if (g_dump_at_exit && g_active) ld_on_exit();
    real_RtlExitUserProcess(code);
}

/* ------------------------------------------------------------------ */
typedef struct hook_def {
    const char *dll;        /* where to resolve the target */
    const char *name;
    void       *hook;
    void      **real;
    void       *target;     /* hooked address (0: not yet) */
} hook_def;

#define H(dll, name, hk, real) { dll, name, (void *)(hk), (void **)(real), NULL }
static hook_def g_core[] = {
    H("ntdll.dll", "RtlAllocateHeap",   hk_RtlAllocateHeap,   &real_RtlAllocateHeap),
    H("ntdll.dll", "RtlReAllocateHeap", hk_RtlReAllocateHeap, &real_RtlReAllocateHeap),
    H("ntdll.dll", "RtlFreeHeap",       hk_RtlFreeHeap,       &real_RtlFreeHeap),
    H("ntdll.dll", "RtlDestroyHeap",    hk_RtlDestroyHeap,    &real_RtlDestroyHeap),
    H("ntdll.dll", "RtlCreateHeap",     hk_RtlCreateHeap,     &real_RtlCreateHeap),
    H("ntdll.dll", "NtAllocateVirtualMemory", hk_NtAllocateVirtualMemory, &real_NtAllocateVirtualMemory),
    H("ntdll.dll", "NtFreeVirtualMemory",     hk_NtFreeVirtualMemory,     &real_NtFreeVirtualMemory),
    H("ntdll.dll", "LdrLoadDll",        hk_LdrLoadDll,        &real_LdrLoadDll),
    H("ntdll.dll", "RtlExitUserProcess", hk_RtlExitUserProcess, &real_RtlExitUserProcess),
    H("ntdll.dll", "LdrUnloadDll",      hk_LdrUnloadDll,      &real_LdrUnloadDll),
};

#define CRT_DEFS(dll, tag)                                                        \
    H(dll, "malloc",  lb_malloc_##tag,  &real_malloc_##tag),                      \
    H(dll, "calloc",  lb_calloc_##tag,  &real_calloc_##tag),                      \
    H(dll, "realloc", lb_realloc_##tag, &real_realloc_##tag),                     \
    H(dll, "_recalloc", lb_recalloc_##tag, &real_recalloc_##tag),                 \
    H(dll, "_aligned_malloc", lb_aligned_malloc_##tag, &real_aligned_malloc_##tag), \
    H(dll, "_aligned_realloc", lb_aligned_realloc_##tag, &real_aligned_realloc_##tag), \
    H(dll, "_strdup", lb_strdup_##tag, &real_strdup_##tag),                       \
    H(dll, "_wcsdup", lb_wcsdup_##tag, &real_wcsdup_##tag),                       \
    H(dll, NEW_NAME, lb_new_##tag, &real_new_##tag),                              \
    H(dll, NEWA_NAME, lb_newa_##tag, &real_newa_##tag)
#ifdef _WIN64
#define NEW_NAME  "??2@YAPEAX_K@Z"       /* operator new(size_t) */
#define NEWA_NAME "??_U@YAPEAX_K@Z"      /* operator new[](size_t) */
#else
#define NEW_NAME  "??2@YAPAXI@Z"
#define NEWA_NAME "??_U@YAPAXI@Z"
#endif
static hook_def g_labels[] = {
    CRT_DEFS("msvcrt.dll", msvcrt),
    CRT_DEFS("ucrtbase.dll", ucrt),
    CRT_DEFS("msvcr120.dll", msvcr120),
    CRT_DEFS("msvcr110.dll", msvcr110),
    CRT_DEFS("msvcr100.dll", msvcr100),
    CRT_DEFS("msvcr90.dll", msvcr90),
    H("kernelbase.dll", "LocalAlloc",    lb_LocalAlloc,    &real_LocalAlloc),
    H("kernelbase.dll", "LocalReAlloc",  lb_LocalReAlloc,  &real_LocalReAlloc),
    H("kernel32.dll",   "GlobalAlloc",   lb_GlobalAlloc,   &real_GlobalAlloc),
    H("kernel32.dll",   "GlobalReAlloc", lb_GlobalReAlloc, &real_GlobalReAlloc),
    H("ole32.dll", "CoTaskMemAlloc",   lb_CoTaskMemAlloc,   &real_CoTaskMemAlloc),
    H("ole32.dll", "CoTaskMemRealloc", lb_CoTaskMemRealloc, &real_CoTaskMemRealloc),
    H("ole32.dll", "IMalloc::Alloc",   lb_IMalloc_Alloc,    &real_IMalloc_Alloc),
    H("ole32.dll", "IMalloc::Realloc", lb_IMalloc_Realloc,  &real_IMalloc_Realloc),
    H("oleaut32.dll", "SysAllocString",        lb_SysAllocString,        &real_SysAllocString),
    H("oleaut32.dll", "SysAllocStringLen",     lb_SysAllocStringLen,     &real_SysAllocStringLen),
    H("oleaut32.dll", "SysAllocStringByteLen", lb_SysAllocStringByteLen, &real_SysAllocStringByteLen),
    H("oleaut32.dll", "SysReAllocString",      lb_SysReAllocString,      &real_SysReAllocString),
    H("oleaut32.dll", "SysReAllocStringLen",   lb_SysReAllocStringLen,   &real_SysReAllocStringLen),
    H("oleaut32.dll", "SysFreeString",         lb_SysFreeString,         &real_SysFreeString),
};
#define NCORE   (sizeof g_core / sizeof g_core[0])
#define NLABELS (sizeof g_labels / sizeof g_labels[0])

/* The address a hook_def names in a module that is loaded now, or NULL. */
static void *resolve(const hook_def *d)
{
    HMODULE m = GetModuleHandleA(d->dll);
    if (!m) return NULL;
    if (strncmp(d->name, "IMalloc::", 9) == 0) {
        HRESULT (WINAPI *get)(DWORD, void **) = (void *)GetProcAddress(m, "CoGetMalloc");
        void **malloc_obj = NULL;
        if (!get || get(1 /* MEMCTX_TASK */, (void **)&malloc_obj) != 0 || !malloc_obj) return NULL;
        void **vtbl = *(void ***)malloc_obj;   /* QueryInterface, AddRef, Release, Alloc, Realloc */
        return d->name[9] == 'A' ? vtbl[3] : vtbl[4];
    }
    return (void *)GetProcAddress(m, d->name);
}

/* Hooks the entries whose module is loaded and that are not hooked yet.
 * Two names resolving to one address (a forwarder, or ole32 -> combase) are
 * hooked once: the first entry's label holds. */
static int install(hook_def *defs, size_t n, int required)
{
    int ok = 1;
    EnterCriticalSection(&g_install_cs);
    for (size_t i = 0; i < n; i++) {
        if (defs[i].target) continue;
        void *t = resolve(&defs[i]);
        if (!t) {
            if (required) { ld_log("%s!%s not found", defs[i].dll, defs[i].name); ok = 0; }
            continue;
        }
        int dup = 0;
        for (size_t k = 0; k < NCORE; k++) if (g_core[k].target == t) dup = 1;
        for (size_t k = 0; k < NLABELS; k++) if (g_labels[k].target == t) dup = 1;
        if (dup) { defs[i].target = t; defs[i].hook = NULL; continue; }
        MH_STATUS st = MH_CreateHook(t, defs[i].hook, defs[i].real);
        if (st == MH_OK) st = MH_EnableHook(t);
        if (st != MH_OK) {
            ld_log("cannot hook %s!%s: %s", defs[i].dll, defs[i].name, MH_StatusToString(st));
            if (required) ok = 0;
            defs[i].target = t;
            defs[i].hook = NULL;
            continue;
        }
        defs[i].target = t;
    }
    LeaveCriticalSection(&g_install_cs);
    return ok;
}

static void install_labels(void) { install(g_labels, NLABELS, 0); }

int hooks_install(HMODULE self, int dump_at_exit)
{
    HMODULE pinned;
    g_dump_at_exit = dump_at_exit;
#ifdef _WIN64
    {
        char v[16];
        DWORD n = GetEnvironmentVariableA("LDTRACK_UNWIND", v, sizeof v);
        g_system_unwind = n > 0 && n < sizeof v && strcmp(v, "system") == 0;
    }
#endif
    /* never unloaded: hooks and trampolines point into this DLL */
    if (!GetModuleHandleExW(GET_MODULE_HANDLE_EX_FLAG_FROM_ADDRESS | GET_MODULE_HANDLE_EX_FLAG_PIN,
                            (LPCWSTR)(void *)self, &pinned))
        ld_log("cannot pin ldtrack.dll (error %lu)", GetLastError());
    g_tls_flags = TlsAlloc();
    g_tls_req = TlsAlloc();
    if (g_tls_flags >= 64 || g_tls_req >= 64) {   /* must live in the TEB's own slots */
        ld_log("TlsAlloc gave no TEB slot (%lu, %lu)", g_tls_flags, g_tls_req);
        g_tls_flags = g_tls_req = TLS_OUT_OF_INDEXES;
        return 0;
    }
    InitializeCriticalSection(&g_install_cs);
    hooks_guard_enter();
    MH_STATUS st = MH_Initialize();
    if (st != MH_OK) {
        ld_log("MH_Initialize: %s", MH_StatusToString(st));
        hooks_guard_leave();
        return 0;
    }
    /* Label hooks first (they only label until g_active), then the core. */
    install_labels();
    int ok = install(g_core, NCORE, 1);
    if (ok) InterlockedExchange(&g_active, 1);
    hooks_guard_leave();
    return ok;
}

/* Process exit: other threads were killed, possibly while holding a shard
 * lock; from now on hooks call straight through so that DLL detach code that
 * frees memory cannot block on that lock. */
void hooks_disable(void)
{
    InterlockedExchange(&g_active, 0);
}

/* Comma-separated names of the functions hooked (each name once). */
void hooks_names(char *buf, size_t cap)
{
    size_t len = 0;
    if (cap == 0) return;
    buf[0] = 0;
    for (size_t pass = 0; pass < 2; pass++) {
        hook_def *d = pass ? g_labels : g_core;
        size_t n = pass ? NLABELS : NCORE;
        for (size_t i = 0; i < n; i++) {
            if (!d[i].target || !d[i].hook) continue;
            if (!strncmp(d[i].name, "Ldr", 3) || !strcmp(d[i].name, "RtlExitUserProcess")) continue;
            char name[64];
            snprintf(name, sizeof name, "%s", d[i].name);
            int w = len ? (int)(strstr(buf, name) != NULL) : 0;
            if (w) {   /* exact item already present? */
                int found = 0;
                for (const char *q = buf; (q = strstr(q, name)) != NULL; q++) {
                    size_t l = strlen(name);
                    if ((q == buf || q[-1] == ',') && (q[l] == ',' || q[l] == 0)) { found = 1; break; }
                }
                if (found) continue;
            }
            int k = snprintf(buf + len, cap - len, "%s%s", len ? "," : "", name);
            if (k < 0 || (size_t)k >= cap - len) return;
            len += (size_t)k;
        }
    }
}
