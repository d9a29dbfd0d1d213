/*
 * ldtrack_dll.c - DLL entry point, configuration and the rules thread.
 *
 * Injected by ldtrack.exe (LoadLibraryW in a remote thread).  DllMain reads
 * the launcher's configuration from the named mapping Local\ldtrack-cfg-<pid>
 * (defaults if absent), allocates the tables, patches the IATs, publishes the
 * dump request objects, and starts one background thread.  Doing the work in
 * DllMain is acceptable here: we only walk already-loaded modules (no loads),
 * and the thread we create simply starts once the loader lock is released.
 *
 * The background thread wakes every 200 ms (or at once when the "dump now"
 * event is signaled) and applies the rules: --dump-every-mb (outstanding
 * tracked bytes grew by N MB since the last rule dump), --dump-interval,
 * capped by --max-dumps.  Rule dumps are named <exe stem>_<pid>_<n>.dmp in the
 * configured output folder.
 */
#include "ldtrack.h"
#include <stdarg.h>
#include <stdio.h>
#include <wchar.h>
#include <stdlib.h>

static ld_config   g_cfg;
static HMODULE     g_self;
static DWORD       g_worker_tid;
static ld_control *g_ctl;
static HANDLE      g_dump_event, g_done_event;
static wchar_t     g_stem[MAX_PATH];
static uint32_t    g_rule_dumps;

/* Messages go to the target's stderr, prefixed, never through a watched heap. */
void ld_log(const char *fmt, ...)
{
    char buf[1024];
    va_list ap;
    int n = snprintf(buf, sizeof buf, "ldtrack[%lu]: ", GetCurrentProcessId());
    if (n < 0) return;
    va_start(ap, fmt);
    int m = vsnprintf(buf + n, sizeof buf - (size_t)n - 2, fmt, ap);
    va_end(ap);
    if (m < 0) return;
    n += m;
    if ((size_t)n > sizeof buf - 2) n = (int)(sizeof buf - 2);
    buf[n++] = '\n';
    HANDLE err = GetStdHandle(STD_ERROR_HANDLE);
    DWORD w;
    if (err && err != INVALID_HANDLE_VALUE) WriteFile(err, buf, (DWORD)n, &w, NULL);
}

/* Returns the launcher's mapped config block (to report readiness), or NULL. */
static ld_config *read_config(void)
{
    wchar_t name[64];
    g_cfg.max_allocations = LD_DEFAULT_MAX_ALLOCATIONS;
    g_cfg.max_stacks = LD_DEFAULT_MAX_STACKS;
    g_cfg.max_depth = LD_DEFAULT_MAX_DEPTH;
    if (!GetCurrentDirectoryW(LD_PATH_CHARS, g_cfg.out_dir)) g_cfg.out_dir[0] = 0;

    swprintf(name, 64, L"Local\\ldtrack-cfg-%lu", GetCurrentProcessId());
    HANDLE m = OpenFileMappingW(FILE_MAP_READ | FILE_MAP_WRITE, FALSE, name);
    if (!m) {
        ld_log("no configuration from launcher, using defaults");
        return NULL;
    }
    ld_config *c = MapViewOfFile(m, FILE_MAP_READ | FILE_MAP_WRITE, 0, 0, sizeof *c);
    if (!c) {
        ld_log("MapViewOfFile(config) failed (error %lu)", GetLastError());
        CloseHandle(m);
        return NULL;
    }
    if (c->magic == LD_CFG_MAGIC) {
        g_cfg = *c;
        g_cfg.out_dir[LD_PATH_CHARS - 1] = 0;
    } else {
        ld_log("bad configuration block, using defaults");
    }
    g_cfg.ready = 0;
    CloseHandle(m);            /* the view stays valid until unmapped */
    return c;
}

static int publish_control(void)
{
    wchar_t name[64];
    DWORD pid = GetCurrentProcessId();
    swprintf(name, 64, L"Local\\ldtrack-ctl-%lu", pid);
    HANDLE m = CreateFileMappingW(INVALID_HANDLE_VALUE, NULL, PAGE_READWRITE, 0,
                                  sizeof(ld_control), name);
    if (!m) { ld_log("CreateFileMapping(%ls) failed (error %lu)", name, GetLastError()); return 0; }
    g_ctl = MapViewOfFile(m, FILE_MAP_READ | FILE_MAP_WRITE, 0, 0, sizeof(ld_control));
    if (!g_ctl) { ld_log("MapViewOfFile(control) failed (error %lu)", GetLastError()); return 0; }
    swprintf(name, 64, L"Local\\ldtrack-dump-%lu", pid);
    g_dump_event = CreateEventW(NULL, FALSE, FALSE, name);
    swprintf(name, 64, L"Local\\ldtrack-done-%lu", pid);
    g_done_event = CreateEventW(NULL, FALSE, FALSE, name);
    if (!g_dump_event || !g_done_event) {
        ld_log("CreateEvent failed (error %lu)", GetLastError());
        return 0;
    }
    return 1;   /* the mapping handle stays open for the process lifetime */
}

static void exe_stem(void)
{
    wchar_t path[MAX_PATH];
    DWORD n = GetModuleFileNameW(NULL, path, MAX_PATH);
    if (n == 0 || n >= MAX_PATH) { wcscpy(g_stem, L"process"); return; }
    wchar_t *base = path;
    for (wchar_t *p = path; *p; p++) if (*p == L'\\' || *p == L'/') base = p + 1;
    wchar_t *dot = wcsrchr(base, L'.');
    if (dot) *dot = 0;
    wcsncpy(g_stem, base, MAX_PATH - 1);
}


/* A request from a launcher (ldtrack dump, or ldtrack run for
 * --dump-at-exit): LD_OP_SNAPSHOT builds the stream in this process's memory
 * and publishes its address and size (the launcher reads it with
 * ReadProcessMemory and writes the dump itself); LD_OP_RELEASE frees it. */
static void *g_snapshot;

static void serve_request(void)
{
    LONG r = 0;
    if (g_ctl->op == LD_OP_SNAPSHOT) {
        size_t size = 0;
        if (g_snapshot) VirtualFree(g_snapshot, 0, MEM_RELEASE);
        const char *delay = getenv("LDTRACK_TEST_SNAPSHOT_DELAY_MS");   /* tests only */
        if (delay) Sleep((DWORD)atoi(delay));
        /* the launcher frees it (LD_OP_RELEASE) before it writes the dump:
         * not a region of the process then, so not declared */
        g_snapshot = dump_stream(g_ctl->dump_type, 0, &size);
        g_ctl->addr = (uint64_t)(uintptr_t)g_snapshot;
        g_ctl->size = size;
        if (!g_snapshot) r = ERROR_OUTOFMEMORY;
    } else if (g_ctl->op == LD_OP_RELEASE) {
        if (g_snapshot && !VirtualFree(g_snapshot, 0, MEM_RELEASE))
            ld_log("VirtualFree(snapshot) failed (error %lu)", GetLastError());
        g_snapshot = NULL;
        g_ctl->addr = 0;
        g_ctl->size = 0;
    } else {
        r = ERROR_INVALID_FUNCTION;
    }
    InterlockedExchange(&g_ctl->status, r);
    if (!SetEvent(g_done_event)) ld_log("SetEvent(done) failed (error %lu)", GetLastError());
}

/*
 * Full-memory rule and exit dumps are written from outside the process:
 * ldtrack.dll starts "ldtrack.exe dump <pid> --full -o FILE" from its own
 * folder and waits for it, as "ldtrack dump" works.  A MiniDumpWriteDump
 * inside the process copies memory through dbghelp's own (untracked) heap
 * buffers while it writes it, and those copies of block addresses land in the
 * dump, where a pointer scan (reachability) takes them for references.  The
 * launcher asks this tracker for the stream: on the worker thread the wait
 * answers those requests itself; on another thread (the exit dump) the worker
 * answers them.  Returns 0, or an error after which the caller writes the
 * dump in the process instead.  LDTRACK_INPROCESS_DUMPS=1 in the target's
 * environment keeps every dump in the process (to measure the difference).
 */
static DWORD dump_out_of_process(const wchar_t *path)
{
    static wchar_t exe[LD_PATH_CHARS], cmd[2 * LD_PATH_CHARS + 64];
    const char *inproc = getenv("LDTRACK_INPROCESS_DUMPS");
    if (inproc && strcmp(inproc, "1") == 0) return ERROR_NOT_SUPPORTED;
    DWORD n = GetModuleFileNameW(g_self, exe, LD_PATH_CHARS);
    if (n == 0 || n >= LD_PATH_CHARS - 16) return ERROR_FILENAME_EXCED_RANGE;
    wchar_t *slash = wcsrchr(exe, L'\\');
    if (!slash) return ERROR_PATH_NOT_FOUND;
    wcscpy(slash + 1, L"ldtrack.exe");
    if (swprintf(cmd, sizeof cmd / sizeof cmd[0], L"\"%ls\" dump %lu --full -o \"%ls\"", exe,
                 GetCurrentProcessId(), path) < 0)
        return ERROR_FILENAME_EXCED_RANGE;
    STARTUPINFOW si;
    PROCESS_INFORMATION pi;
    memset(&si, 0, sizeof si);
    si.cb = sizeof si;
    if (!CreateProcessW(exe, cmd, NULL, NULL, FALSE, CREATE_NO_WINDOW, NULL, NULL, &si, &pi)) {
        DWORD e = GetLastError();
        ld_log("cannot start %ls (error %lu)", exe, e);
        return e;
    }
    CloseHandle(pi.hThread);
    int on_worker = GetCurrentThreadId() == g_worker_tid;
    DWORD r = 0;
    for (;;) {
        HANDLE hs[2] = { pi.hProcess, g_dump_event };
        DWORD w = WaitForMultipleObjects(on_worker ? 2 : 1, hs, FALSE, 600000);
        if (w == WAIT_OBJECT_0) break;
        if (w == WAIT_OBJECT_0 + 1) { serve_request(); continue; }
        r = w == WAIT_TIMEOUT ? ERROR_TIMEOUT : GetLastError();
        ld_log("ldtrack.exe dump did not finish (error %lu), stopped", r);
        TerminateProcess(pi.hProcess, 1);
        break;
    }
    DWORD code = 1;
    if (!r && (!GetExitCodeProcess(pi.hProcess, &code) || code != 0)) {
        ld_log("ldtrack.exe dump failed (exit code %lu)", code);
        r = ERROR_GEN_FAILURE;
    }
    CloseHandle(pi.hProcess);
    if (!r) ld_log("wrote %ls (full memory, from outside the process)", path);
    return r;
}

/* A rule or exit dump: with full memory from outside the process (above),
 * else (or if that failed) inside it. */
static DWORD write_dump(const wchar_t *path)
{
    if (g_cfg.full && dump_out_of_process(path) == 0) return 0;
    return dump_write(path, (int)g_cfg.full);
}

static void rule_dump(const char *why)
{
    wchar_t path[LD_PATH_CHARS];
    g_rule_dumps++;
    swprintf(path, LD_PATH_CHARS, L"%ls\\%ls_%lu_%u.dmp", g_cfg.out_dir, g_stem,
             GetCurrentProcessId(), g_rule_dumps);
    ld_log("rule dump %u (%s)", g_rule_dumps, why);
    write_dump(path);
}

static DWORD WINAPI worker(LPVOID unused)
{
    (void)unused;
    g_worker_tid = GetCurrentThreadId();
    hooks_guard_enter();                 /* nothing this thread does is tracked */
    uint64_t last_bytes = tbl_outstanding_bytes();
    ULONGLONG last_time = GetTickCount64();
    for (;;) {
        DWORD w = WaitForSingleObject(g_dump_event, 200);
        if (w == WAIT_OBJECT_0) {
            serve_request();
        } else if (w != WAIT_TIMEOUT) {
            ld_log("wait failed (error %lu), rules thread stops", GetLastError());
            return 1;
        }
        if (g_cfg.max_dumps && g_rule_dumps >= g_cfg.max_dumps) continue;
        uint64_t bytes = tbl_outstanding_bytes();
        ULONGLONG now = GetTickCount64();
        if (g_cfg.dump_every_bytes && bytes >= last_bytes + g_cfg.dump_every_bytes) {
            rule_dump("outstanding bytes grew");
            last_bytes = tbl_outstanding_bytes();
            last_time = now;
        } else if (g_cfg.dump_interval_s && now - last_time >= (ULONGLONG)g_cfg.dump_interval_s * 1000) {
            rule_dump("interval");
            last_bytes = tbl_outstanding_bytes();
            last_time = now;
        }
    }
}

/* --dump-at-exit: called by the RtlExitUserProcess hook on the exiting
 * thread, before the other threads are ended, so the table is complete and no
 * lock can be held by a killed thread.  Written from inside the process
 * (the process is healthy at that point; nothing waits for a launcher). */
void ld_on_exit(void)
{
    static volatile LONG once;
    if (InterlockedExchange(&once, 1)) return;
    int guarded = hooks_guard_enter();
    wchar_t path[LD_PATH_CHARS];
    swprintf(path, LD_PATH_CHARS, L"%ls\\%ls_%lu_exit.dmp", g_cfg.out_dir, g_stem, GetCurrentProcessId());
    ld_log("process exiting: dump at exit");
    DWORD r = write_dump(path);
    if (r) ld_log("dump at exit failed (error %lu)", r);
    if (guarded) hooks_guard_leave();
}

static void init(HMODULE self)
{
    g_self = self;
    ld_config *shared_cfg = read_config();
    LONG result = -1;
    exe_stem();
    dump_set_attached((int)g_cfg.attached);
    dump_set_image(self);
    int guarded = hooks_guard_enter();   /* no-op before hooks_install */
    (void)guarded;
    if (tbl_init(g_cfg.max_allocations, g_cfg.max_stacks, g_cfg.max_depth) &&
        publish_control() && hooks_install(self, (int)g_cfg.dump_at_exit)) {
        HANDLE t = CreateThread(NULL, 0, worker, NULL, 0, &g_worker_tid);
        if (!t) ld_log("CreateThread failed (error %lu): no rules, no dump requests", GetLastError());
        else CloseHandle(t);
        result = 1;
        ld_log("tracking (max_allocations=%u max_stacks=%u max_depth=%u)",
               g_cfg.max_allocations, g_cfg.max_stacks, tbl_max_depth());
    } else {
        ld_log("initialization failed, not tracking");
    }
    if (shared_cfg) {
        InterlockedExchange(&shared_cfg->ready, result);
        if (!UnmapViewOfFile(shared_cfg)) ld_log("UnmapViewOfFile failed (error %lu)", GetLastError());
    }
}

BOOL WINAPI DllMain(HINSTANCE inst, DWORD reason, LPVOID reserved)
{
    if (reason == DLL_PROCESS_ATTACH) {
        DisableThreadLibraryCalls(inst);
        init(inst);
    }
    if (reason == DLL_PROCESS_DETACH && reserved != NULL) {
        /* Process is exiting (we were loaded last, so we are detached before
         * the DLLs we hooked): stop recording, see hooks_disable(). */
        hooks_disable();
    }
    /* On FreeLibrary we deliberately leave the IAT patches and tables in
     * place: the tracker is not meant to be unloaded while the process runs
     * (the injected LoadLibrary reference is never released). */
    return TRUE;
}
