/*
 * hooks.c - IAT hooking of the allocation functions.
 *
 * Why IAT patching: it needs no code patching (no trampolines, no disassembler)
 * and no change to the target.  Every loaded module's import address table
 * slot whose value equals the real address of a watched function is replaced
 * with our hook.  Matching by *value* (not by imported DLL name) also catches
 * forwarders: kernel32!HeapAlloc is forwarded to ntdll!RtlAllocateHeap, and
 * api-ms-win-crt-heap-l1-1-0!malloc resolves to ucrtbase!malloc, so whichever
 * name a module imported, the slot holds the same address.
 *
 * Modules loaded later are covered by hooking LoadLibraryA/W/ExA/ExW and
 * re-patching every module after each successful load.
 *
 * Recursion guard: a TLS flag marks "this thread is inside a hook or inside
 * the tracker".  While it is set, hooks call straight through.  This both
 * prevents recursion (our own code, dbghelp, stack capture may allocate) and
 * prevents double counting: msvcrt!malloc itself calls HeapAlloc through its
 * (patched) IAT, and only the outer malloc must be recorded.
 */
#include "ldtrack.h"
#include <psapi.h>
#include <oleauto.h>
#include <wchar.h>
#include <string.h>
#include <stdio.h>

static DWORD   g_tls = TLS_OUT_OF_INDEXES;
static HMODULE g_self;
static volatile LONG g_active;            /* 1 once tables are ready */
static CRITICAL_SECTION g_patch_cs;       /* serializes IAT patching */

int hooks_guard_enter(void)
{
    DWORD err = GetLastError();           /* TlsGetValue clobbers last error */
    int busy = g_tls == TLS_OUT_OF_INDEXES || TlsGetValue(g_tls) != NULL;
    if (!busy) TlsSetValue(g_tls, (LPVOID)1);
    SetLastError(err);
    return !busy;
}

void hooks_guard_leave(void)
{
    DWORD err = GetLastError();
    TlsSetValue(g_tls, NULL);
    SetLastError(err);
}

/* Captures the stack (innermost first; frame 0 is the hook itself, which lies
 * in ldtrack.dll and is skipped by readers via allocator_modules) and records
 * the block.  noinline so the skip count is stable. */
static __attribute__((noinline)) void record(void *p, uint64_t size, HANDLE heap, uint8_t kind)
{
    void *frames[LD_MAX_DEPTH_LIMIT + 1];
    uint32_t depth = tbl_max_depth();
    USHORT n = RtlCaptureStackBackTrace(1, depth + 1, frames, NULL);
    int truncated = n > depth;
    if (truncated) n = (USHORT)depth;
    tbl_add((uint64_t)(uintptr_t)p, size, (uint64_t)(uintptr_t)heap, kind, frames, n, truncated);
}

static void forget(void *p)
{
    if (p) tbl_remove((uint64_t)(uintptr_t)p, NULL);
}

/* For the realloc family: the old block is forgotten *before* the real call
 * (once the real function frees it, another thread may get the same address
 * and record it, and a later forget would remove that new record).  If the
 * call fails, the old block is still valid and is recorded again with its old
 * size (its stack becomes the failed realloc's). Returns 1 if it was tracked. */
static int take(void *p, uint64_t *old_size)
{
    return p ? tbl_remove((uint64_t)(uintptr_t)p, old_size) : 0;
}

/* ------------------------------------------------------------------ */
/* Win32 heap                                                          */
static LPVOID (WINAPI *real_HeapAlloc)(HANDLE, DWORD, SIZE_T);
static LPVOID (WINAPI *real_HeapReAlloc)(HANDLE, DWORD, LPVOID, SIZE_T);
static BOOL   (WINAPI *real_HeapFree)(HANDLE, DWORD, LPVOID);

static LPVOID WINAPI hk_HeapAlloc(HANDLE h, DWORD f, SIZE_T n)
{
    if (!g_active || !hooks_guard_enter()) return real_HeapAlloc(h, f, n);
    LPVOID p = real_HeapAlloc(h, f, n);
    DWORD err = GetLastError();
    if (p) record(p, n, h, LD_KIND_HEAP);
    hooks_guard_leave();
    SetLastError(err);
    return p;
}

static LPVOID WINAPI hk_HeapReAlloc(HANDLE h, DWORD f, LPVOID old, SIZE_T n)
{
    if (!g_active || !hooks_guard_enter()) return real_HeapReAlloc(h, f, old, n);
    uint64_t old_size = 0;
    int had = take(old, &old_size);
    LPVOID p = real_HeapReAlloc(h, f, old, n);
    DWORD err = GetLastError();
    if (p) record(p, n, h, LD_KIND_HEAP);
    else if (had) record(old, old_size, h, LD_KIND_HEAP);   /* old block still valid */
    hooks_guard_leave();
    SetLastError(err);
    return p;
}

static BOOL WINAPI hk_HeapFree(HANDLE h, DWORD f, LPVOID p)
{
    if (!g_active || !hooks_guard_enter()) return real_HeapFree(h, f, p);
    /* Forget before freeing: once freed, another thread may get the same
     * address back and record it before we would remove it. */
    forget(p);
    BOOL ok = real_HeapFree(h, f, p);
    hooks_guard_leave();
    return ok;
}

/* ------------------------------------------------------------------ */
/* C runtime: one set of hooks per CRT DLL, since each must call its own real
 * function (msvcrt and ucrtbase have separate heaps/state). */
#define CRT_HOOKS(tag)                                                          \
static void *(__cdecl *real_malloc_##tag)(size_t);                             \
static void *(__cdecl *real_calloc_##tag)(size_t, size_t);                     \
static void *(__cdecl *real_realloc_##tag)(void *, size_t);                    \
static void  (__cdecl *real_free_##tag)(void *);                               \
static void *__cdecl hk_malloc_##tag(size_t n)                                 \
{                                                                              \
    if (!g_active || !hooks_guard_enter()) return real_malloc_##tag(n);        \
    void *p = real_malloc_##tag(n);                                            \
    DWORD err = GetLastError();                                                \
    if (p) record(p, n, NULL, LD_KIND_CRT);                                    \
    hooks_guard_leave();                                                       \
    SetLastError(err);                                                         \
    return p;                                                                  \
}                                                                              \
static void *__cdecl hk_calloc_##tag(size_t c, size_t n)                       \
{                                                                              \
    if (!g_active || !hooks_guard_enter()) return real_calloc_##tag(c, n);     \
    void *p = real_calloc_##tag(c, n);                                         \
    DWORD err = GetLastError();                                                \
    if (p) record(p, (uint64_t)c * n, NULL, LD_KIND_CRT);                      \
    hooks_guard_leave();                                                       \
    SetLastError(err);                                                         \
    return p;                                                                  \
}                                                                              \
static void *__cdecl hk_realloc_##tag(void *old, size_t n)                     \
{                                                                              \
    if (!g_active || !hooks_guard_enter()) return real_realloc_##tag(old, n);  \
    uint64_t old_size = 0;                                                     \
    int had = take(old, &old_size);                                            \
    void *p = real_realloc_##tag(old, n);                                      \
    DWORD err = GetLastError();                                                \
    if (p) record(p, n, NULL, LD_KIND_CRT);                                    \
    else if (had && n != 0) /* failed: old block still valid; n == 0 freed it */ \
        record(old, old_size, NULL, LD_KIND_CRT);                              \
    hooks_guard_leave();                                                       \
    SetLastError(err);                                                         \
    return p;                                                                  \
}                                                                              \
static void __cdecl hk_free_##tag(void *p)                                     \
{                                                                              \
    if (!g_active || !hooks_guard_enter()) { real_free_##tag(p); return; }     \
    forget(p);                                                                 \
    real_free_##tag(p);                                                        \
    hooks_guard_leave();                                                       \
}
CRT_HOOKS(msvcrt)
CRT_HOOKS(ucrt)

/* ------------------------------------------------------------------ */
/* Virtual memory: a new region is one allocation (reserve, or commit at a
 * system-chosen address); committing inside an existing reservation is not.
 * MEM_RELEASE ends it; MEM_DECOMMIT does not. */
static LPVOID (WINAPI *real_VirtualAlloc)(LPVOID, SIZE_T, DWORD, DWORD);
static BOOL   (WINAPI *real_VirtualFree)(LPVOID, SIZE_T, DWORD);

static LPVOID WINAPI hk_VirtualAlloc(LPVOID a, SIZE_T n, DWORD type, DWORD prot)
{
    if (!g_active || !hooks_guard_enter()) return real_VirtualAlloc(a, n, type, prot);
    LPVOID p = real_VirtualAlloc(a, n, type, prot);
    DWORD err = GetLastError();
    if (p && (a == NULL || (type & MEM_RESERVE))) record(p, n, NULL, LD_KIND_VIRTUAL);
    hooks_guard_leave();
    SetLastError(err);
    return p;
}

static BOOL WINAPI hk_VirtualFree(LPVOID a, SIZE_T n, DWORD type)
{
    if (!g_active || !hooks_guard_enter()) return real_VirtualFree(a, n, type);
    if (type & MEM_RELEASE) forget(a);
    BOOL ok = real_VirtualFree(a, n, type);
    hooks_guard_leave();
    return ok;
}

/* ------------------------------------------------------------------ */
/* COM task memory and BSTRs (only patched where ole32/oleaut32 are loaded). */
static LPVOID (WINAPI *real_CoTaskMemAlloc)(SIZE_T);
static LPVOID (WINAPI *real_CoTaskMemRealloc)(LPVOID, SIZE_T);
static void   (WINAPI *real_CoTaskMemFree)(LPVOID);
static BSTR   (WINAPI *real_SysAllocString)(const OLECHAR *);
static BSTR   (WINAPI *real_SysAllocStringLen)(const OLECHAR *, UINT);
static void   (WINAPI *real_SysFreeString)(BSTR);

static LPVOID WINAPI hk_CoTaskMemAlloc(SIZE_T n)
{
    if (!g_active || !hooks_guard_enter()) return real_CoTaskMemAlloc(n);
    LPVOID p = real_CoTaskMemAlloc(n);
    DWORD err = GetLastError();
    if (p) record(p, n, NULL, LD_KIND_COTASK);
    hooks_guard_leave();
    SetLastError(err);
    return p;
}

static LPVOID WINAPI hk_CoTaskMemRealloc(LPVOID old, SIZE_T n)
{
    if (!g_active || !hooks_guard_enter()) return real_CoTaskMemRealloc(old, n);
    uint64_t old_size = 0;
    int had = take(old, &old_size);
    LPVOID p = real_CoTaskMemRealloc(old, n);
    DWORD err = GetLastError();
    if (p) record(p, n, NULL, LD_KIND_COTASK);
    else if (had && n != 0) record(old, old_size, NULL, LD_KIND_COTASK);
    hooks_guard_leave();
    SetLastError(err);
    return p;
}

static void WINAPI hk_CoTaskMemFree(LPVOID p)
{
    if (!g_active || !hooks_guard_enter()) { real_CoTaskMemFree(p); return; }
    forget(p);
    real_CoTaskMemFree(p);
    hooks_guard_leave();
}

static BSTR WINAPI hk_SysAllocString(const OLECHAR *s)
{
    if (!g_active || !hooks_guard_enter()) return real_SysAllocString(s);
    BSTR b = real_SysAllocString(s);
    DWORD err = GetLastError();
    if (b) record(b, (uint64_t)wcslen(s) * sizeof(OLECHAR), NULL, LD_KIND_BSTR); /* b != NULL implies s != NULL */
    hooks_guard_leave();
    SetLastError(err);
    return b;
}

static BSTR WINAPI hk_SysAllocStringLen(const OLECHAR *s, UINT len)
{
    if (!g_active || !hooks_guard_enter()) return real_SysAllocStringLen(s, len);
    BSTR b = real_SysAllocStringLen(s, len);
    DWORD err = GetLastError();
    if (b) record(b, (uint64_t)len * sizeof(OLECHAR), NULL, LD_KIND_BSTR);
    hooks_guard_leave();
    SetLastError(err);
    return b;
}

static void WINAPI hk_SysFreeString(BSTR b)
{
    if (!g_active || !hooks_guard_enter()) { real_SysFreeString(b); return; }
    forget(b);
    real_SysFreeString(b);
    hooks_guard_leave();
}

/* ------------------------------------------------------------------ */
/* Loader: re-patch after every load so later modules are covered.      */
static HMODULE (WINAPI *real_LoadLibraryA)(LPCSTR);
static HMODULE (WINAPI *real_LoadLibraryW)(LPCWSTR);
static HMODULE (WINAPI *real_LoadLibraryExA)(LPCSTR, HANDLE, DWORD);
static HMODULE (WINAPI *real_LoadLibraryExW)(LPCWSTR, HANDLE, DWORD);
static void patch_all(void);

static HMODULE after_load(HMODULE m)
{
    DWORD err = GetLastError();
    if (m && g_active && hooks_guard_enter()) {
        patch_all();
        hooks_guard_leave();
    }
    SetLastError(err);
    return m;
}
static HMODULE WINAPI hk_LoadLibraryA(LPCSTR n) { return after_load(real_LoadLibraryA(n)); }
static HMODULE WINAPI hk_LoadLibraryW(LPCWSTR n) { return after_load(real_LoadLibraryW(n)); }
static HMODULE WINAPI hk_LoadLibraryExA(LPCSTR n, HANDLE f, DWORD fl) { return after_load(real_LoadLibraryExA(n, f, fl)); }
static HMODULE WINAPI hk_LoadLibraryExW(LPCWSTR n, HANDLE f, DWORD fl) { return after_load(real_LoadLibraryExW(n, f, fl)); }

/* ------------------------------------------------------------------ */
typedef struct hook_def {
    const char *dll;        /* where to resolve the real function */
    const char *name;
    void       *hook;
    void      **real;
    int         used;       /* patched into at least one IAT slot */
} hook_def;

#define H(dll, name, hk, real) { dll, name, (void *)(hk), (void **)(real), 0 }
static hook_def g_hooks[] = {
    H("kernel32.dll", "HeapAlloc",     hk_HeapAlloc,     &real_HeapAlloc),
    H("kernel32.dll", "HeapReAlloc",   hk_HeapReAlloc,   &real_HeapReAlloc),
    H("kernel32.dll", "HeapFree",      hk_HeapFree,      &real_HeapFree),
    H("kernel32.dll", "VirtualAlloc",  hk_VirtualAlloc,  &real_VirtualAlloc),
    H("kernel32.dll", "VirtualFree",   hk_VirtualFree,   &real_VirtualFree),
    H("kernel32.dll", "LoadLibraryA",  hk_LoadLibraryA,  &real_LoadLibraryA),
    H("kernel32.dll", "LoadLibraryW",  hk_LoadLibraryW,  &real_LoadLibraryW),
    H("kernel32.dll", "LoadLibraryExA", hk_LoadLibraryExA, &real_LoadLibraryExA),
    H("kernel32.dll", "LoadLibraryExW", hk_LoadLibraryExW, &real_LoadLibraryExW),
    H("msvcrt.dll",   "malloc",  hk_malloc_msvcrt,  &real_malloc_msvcrt),
    H("msvcrt.dll",   "calloc",  hk_calloc_msvcrt,  &real_calloc_msvcrt),
    H("msvcrt.dll",   "realloc", hk_realloc_msvcrt, &real_realloc_msvcrt),
    H("msvcrt.dll",   "free",    hk_free_msvcrt,    &real_free_msvcrt),
    H("ucrtbase.dll", "malloc",  hk_malloc_ucrt,    &real_malloc_ucrt),
    H("ucrtbase.dll", "calloc",  hk_calloc_ucrt,    &real_calloc_ucrt),
    H("ucrtbase.dll", "realloc", hk_realloc_ucrt,   &real_realloc_ucrt),
    H("ucrtbase.dll", "free",    hk_free_ucrt,      &real_free_ucrt),
    H("ole32.dll",    "CoTaskMemAlloc",   hk_CoTaskMemAlloc,   &real_CoTaskMemAlloc),
    H("ole32.dll",    "CoTaskMemRealloc", hk_CoTaskMemRealloc, &real_CoTaskMemRealloc),
    H("ole32.dll",    "CoTaskMemFree",    hk_CoTaskMemFree,    &real_CoTaskMemFree),
    H("oleaut32.dll", "SysAllocString",    hk_SysAllocString,    &real_SysAllocString),
    H("oleaut32.dll", "SysAllocStringLen", hk_SysAllocStringLen, &real_SysAllocStringLen),
    H("oleaut32.dll", "SysFreeString",     hk_SysFreeString,     &real_SysFreeString),
};
#define NHOOKS (sizeof g_hooks / sizeof g_hooks[0])

/* Resolve real addresses of functions in DLLs that are loaded now.  We never
 * load a DLL ourselves just to hook it: if nothing loaded ole32, nobody can
 * be calling CoTaskMemAlloc through an IAT. */
static void resolve_reals(void)
{
    for (size_t i = 0; i < NHOOKS; i++) {
        if (*g_hooks[i].real) continue;
        HMODULE m = GetModuleHandleA(g_hooks[i].dll);
        if (!m) continue;
        FARPROC p = GetProcAddress(m, g_hooks[i].name);
        if (p) *g_hooks[i].real = (void *)p;
    }
}

static void patch_slot(void **slot, void *hook)
{
    DWORD old;
    if (!VirtualProtect(slot, sizeof *slot, PAGE_READWRITE, &old)) {
        ld_log("VirtualProtect(IAT %p) failed (error %lu)", (void *)slot, GetLastError());
        return;
    }
    InterlockedExchangePointer(slot, hook);
    DWORD ignored;
    if (!VirtualProtect(slot, sizeof *slot, old, &ignored))
        ld_log("VirtualProtect restore (IAT %p) failed (error %lu)", (void *)slot, GetLastError());
}

static void patch_module(HMODULE m)
{
    BYTE *base = (BYTE *)m;
    IMAGE_DOS_HEADER *dos = (IMAGE_DOS_HEADER *)base;
    if (dos->e_magic != IMAGE_DOS_SIGNATURE) return;
    IMAGE_NT_HEADERS *nt = (IMAGE_NT_HEADERS *)(base + dos->e_lfanew);
    if (nt->Signature != IMAGE_NT_SIGNATURE ||
        nt->OptionalHeader.Magic != IMAGE_NT_OPTIONAL_HDR64_MAGIC) return;
    IMAGE_DATA_DIRECTORY dir = nt->OptionalHeader.DataDirectory[IMAGE_DIRECTORY_ENTRY_IMPORT];
    if (dir.VirtualAddress == 0 || dir.Size == 0) return;
    IMAGE_IMPORT_DESCRIPTOR *d = (IMAGE_IMPORT_DESCRIPTOR *)(base + dir.VirtualAddress);
    for (; d->Name != 0 && d->FirstThunk != 0; d++) {
        void **slot = (void **)(base + d->FirstThunk);
        for (; *slot != NULL; slot++) {
            for (size_t i = 0; i < NHOOKS; i++) {
                if (*g_hooks[i].real && *slot == *g_hooks[i].real) {
                    patch_slot(slot, g_hooks[i].hook);
                    g_hooks[i].used = 1;
                    break;
                }
            }
        }
    }
}

/* Patch every loaded module except ourselves (our own calls must reach the
 * real functions). Caller holds the recursion guard. */
static void patch_all(void)
{
    static HMODULE mods[2048];
    DWORD needed = 0;
    EnterCriticalSection(&g_patch_cs);
    resolve_reals();
    if (!K32EnumProcessModules(GetCurrentProcess(), mods, sizeof mods, &needed)) {
        ld_log("EnumProcessModules failed (error %lu)", GetLastError());
    } else {
        DWORD n = needed / sizeof(HMODULE);
        if (n > sizeof mods / sizeof mods[0]) n = sizeof mods / sizeof mods[0];
        for (DWORD i = 0; i < n; i++)
            if (mods[i] != g_self) patch_module(mods[i]);
    }
    LeaveCriticalSection(&g_patch_cs);
}

int hooks_install(HMODULE self)
{
    g_self = self;
    g_tls = TlsAlloc();
    if (g_tls == TLS_OUT_OF_INDEXES) {
        ld_log("TlsAlloc failed (error %lu)", GetLastError());
        return 0;
    }
    InitializeCriticalSection(&g_patch_cs);
    hooks_guard_enter();
    resolve_reals();
    InterlockedExchange(&g_active, 1);   /* reals resolved, tables ready */
    patch_all();
    hooks_guard_leave();
    return 1;
}

/* Process exit: other threads were killed, possibly while holding our table
 * lock; from now on hooks call straight through so that DLL detach code that
 * frees memory cannot block on that lock. */
void hooks_disable(void)
{
    InterlockedExchange(&g_active, 0);
}

/* Comma-separated names of functions that were patched somewhere. */
void hooks_names(char *buf, size_t cap)
{
    size_t len = 0;
    if (cap == 0) return;
    buf[0] = 0;
    for (size_t i = 0; i < NHOOKS; i++) {
        if (!g_hooks[i].used || strncmp(g_hooks[i].name, "LoadLibrary", 11) == 0) continue;
        /* malloc etc. appear once even if both CRTs were patched */
        int dup = 0;
        for (size_t j = 0; j < i; j++)
            if (g_hooks[j].used && strcmp(g_hooks[j].name, g_hooks[i].name) == 0) dup = 1;
        if (dup) continue;
        int w = snprintf(buf + len, cap - len, "%s%s", len ? "," : "", g_hooks[i].name);
        if (w < 0 || (size_t)w >= cap - len) break;
        len += (size_t)w;
    }
}
