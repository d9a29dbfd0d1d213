/*
 * launcher.c - ldtrack.exe: starts or attaches to a process, injects
 * ldtrack.dll, and asks a tracked process for a dump.
 *
 *   ldtrack run [options] -- program.exe [args...]
 *   ldtrack attach PID [options]
 *   ldtrack dump PID [--full] -o FILE
 *
 * Options (run/attach): --out DIR, --dump-every-mb N, --dump-interval SECONDS,
 *   --max-dumps K, --max-allocations N, --max-stacks N, --max-depth N, --full
 *
 * Injection: VirtualAllocEx + WriteProcessMemory of the DLL path, then
 * CreateRemoteThread at LoadLibraryW (kernel32 sits at the same address in
 * every process of a session).  For "run" the child is created suspended so
 * the tracker is in place before the program's own code runs; the remote
 * thread performs the process's loader initialization first (static imports,
 * their DllMains), then loads us.  Options travel in the named mapping
 * Local\ldtrack-cfg-<pid>, which works for attach too (a running process's
 * environment cannot be changed).  The DLL reports success in that block.
 */
#include "ldtrack.h"
#include <stdio.h>
#include <stdlib.h>
#include <wchar.h>
#include <dbghelp.h>

static void usage(void)
{
    fwprintf(stderr,
        L"usage:\n"
        L"  ldtrack run [options] -- program.exe [args...]\n"
        L"  ldtrack attach PID [options]\n"
        L"  ldtrack dump PID [--full] -o FILE\n"
        L"options: --out DIR  --dump-every-mb N  --dump-interval SECONDS  --max-dumps K\n"
        L"         --max-allocations N  --max-stacks N  --max-depth N  --full  --dump-at-exit\n");
}

static int parse_u32(const wchar_t *s, uint32_t *out)
{
    wchar_t *end;
    unsigned long v;
    if (!s || !*s) return 0;
    v = wcstoul(s, &end, 10);
    if (*end || v > 0xFFFFFFFFul) return 0;
    *out = (uint32_t)v;
    return 1;
}

/* Parses options starting at argv[i]; stops at "--" or a non-option.
 * Returns the index of the first unparsed argument, or -1 on error. */
static int parse_options(int argc, wchar_t **argv, int i, ld_config *c)
{
    for (; i < argc; i++) {
        const wchar_t *a = argv[i];
        const wchar_t *v = i + 1 < argc ? argv[i + 1] : NULL;
        uint32_t n;
        if (wcscmp(a, L"--") == 0) return i;
        if (wcscmp(a, L"--full") == 0) { c->full = 1; continue; }
        if (wcscmp(a, L"--dump-at-exit") == 0) { c->dump_at_exit = 1; continue; }
        if (!v) { fwprintf(stderr, L"ldtrack: %ls needs a value\n", a); return -1; }
        if (wcscmp(a, L"--out") == 0) {
            if (!GetFullPathNameW(v, LD_PATH_CHARS, c->out_dir, NULL)) {
                fwprintf(stderr, L"ldtrack: bad --out %ls (error %lu)\n", v, GetLastError());
                return -1;
            }
            i++;
            continue;
        }
        if (!parse_u32(v, &n)) { fwprintf(stderr, L"ldtrack: %ls: not a number: %ls\n", a, v); return -1; }
        if (wcscmp(a, L"--dump-every-mb") == 0) c->dump_every_bytes = (uint64_t)n << 20;
        else if (wcscmp(a, L"--dump-interval") == 0) c->dump_interval_s = n;
        else if (wcscmp(a, L"--max-dumps") == 0) c->max_dumps = n;
        else if (wcscmp(a, L"--max-allocations") == 0) c->max_allocations = n;
        else if (wcscmp(a, L"--max-stacks") == 0) c->max_stacks = n;
        else if (wcscmp(a, L"--max-depth") == 0) {
            if (n == 0 || n > LD_MAX_DEPTH_LIMIT) {
                fwprintf(stderr, L"ldtrack: --max-depth must be 1..%u\n", LD_MAX_DEPTH_LIMIT);
                return -1;
            }
            c->max_depth = n;
        } else { fwprintf(stderr, L"ldtrack: unknown option %ls\n", a); return -1; }
        i++;
    }
    return i;
}

static void default_config(ld_config *c)
{
    memset(c, 0, sizeof *c);
    c->magic = LD_CFG_MAGIC;
    c->max_allocations = LD_DEFAULT_MAX_ALLOCATIONS;
    c->max_stacks = LD_DEFAULT_MAX_STACKS;
    c->max_depth = LD_DEFAULT_MAX_DEPTH;
    if (!GetCurrentDirectoryW(LD_PATH_CHARS, c->out_dir)) c->out_dir[0] = 0;
}

/* Appends one argument to a command line with Windows quoting rules. */
static int append_arg(wchar_t *cmd, size_t cap, const wchar_t *arg)
{
    size_t len = wcslen(cmd);
    int quote = arg[0] == 0 || wcspbrk(arg, L" \t\"") != NULL;
    #define PUT(ch) do { if (len + 2 >= cap) return 0; cmd[len++] = (ch); } while (0)
    if (len) PUT(L' ');
    if (quote) PUT(L'"');
    for (const wchar_t *p = arg; ; p++) {
        size_t bs = 0;
        while (*p == L'\\') { bs++; p++; }
        if (*p == 0) {                       /* double backslashes before closing quote */
            for (size_t k = 0; k < (quote ? bs * 2 : bs); k++) PUT(L'\\');
            break;
        }
        if (*p == L'"') {
            for (size_t k = 0; k < bs * 2 + 1; k++) PUT(L'\\');
        } else {
            for (size_t k = 0; k < bs; k++) PUT(L'\\');
        }
        PUT(*p);
    }
    if (quote) PUT(L'"');
    cmd[len] = 0;
    #undef PUT
    return 1;
}

/* Creates the config mapping for pid, injects the DLL, and waits for the DLL
 * to report readiness.  Returns 1 on success. */
static int inject(HANDLE proc, DWORD pid, const ld_config *cfg)
{
    wchar_t dll[MAX_PATH], name[64];
    DWORD n = GetModuleFileNameW(NULL, dll, MAX_PATH);
    if (n == 0 || n >= MAX_PATH) { fwprintf(stderr, L"ldtrack: GetModuleFileName failed\n"); return 0; }
    wchar_t *slash = wcsrchr(dll, L'\\');
    if (!slash || (size_t)(slash - dll) + 12 >= MAX_PATH) return 0;
    wcscpy(slash + 1, L"ldtrack.dll");
    if (GetFileAttributesW(dll) == INVALID_FILE_ATTRIBUTES) {
        fwprintf(stderr, L"ldtrack: %ls not found\n", dll);
        return 0;
    }

    swprintf(name, 64, L"Local\\ldtrack-cfg-%lu", pid);
    HANDLE map = CreateFileMappingW(INVALID_HANDLE_VALUE, NULL, PAGE_READWRITE, 0, sizeof(ld_config), name);
    if (!map) { fwprintf(stderr, L"ldtrack: CreateFileMapping failed (error %lu)\n", GetLastError()); return 0; }
    ld_config *shared = MapViewOfFile(map, FILE_MAP_READ | FILE_MAP_WRITE, 0, 0, sizeof *shared);
    if (!shared) {
        fwprintf(stderr, L"ldtrack: MapViewOfFile failed (error %lu)\n", GetLastError());
        CloseHandle(map);
        return 0;
    }
    *shared = *cfg;
    shared->ready = 0;

    int ok = 0;
    SIZE_T bytes = (wcslen(dll) + 1) * sizeof(wchar_t);
    void *remote = VirtualAllocEx(proc, NULL, bytes, MEM_COMMIT | MEM_RESERVE, PAGE_READWRITE);
    if (!remote) { fwprintf(stderr, L"ldtrack: VirtualAllocEx failed (error %lu)\n", GetLastError()); goto done; }
    if (!WriteProcessMemory(proc, remote, dll, bytes, NULL)) {
        fwprintf(stderr, L"ldtrack: WriteProcessMemory failed (error %lu)\n", GetLastError());
        goto done;
    }
    HMODULE k32 = GetModuleHandleW(L"kernel32.dll");
    FARPROC ll = k32 ? GetProcAddress(k32, "LoadLibraryW") : NULL;
    if (!ll) { fwprintf(stderr, L"ldtrack: LoadLibraryW not found\n"); goto done; }
    HANDLE t = CreateRemoteThread(proc, NULL, 0, (LPTHREAD_START_ROUTINE)(void *)ll, remote, 0, NULL);
    if (!t) { fwprintf(stderr, L"ldtrack: CreateRemoteThread failed (error %lu)\n", GetLastError()); goto done; }
    DWORD w = WaitForSingleObject(t, 60000);
    CloseHandle(t);
    if (w != WAIT_OBJECT_0) { fwprintf(stderr, L"ldtrack: injected thread did not finish\n"); goto done; }
    if (shared->ready == 1) ok = 1;
    else fwprintf(stderr, L"ldtrack: tracker did not start in process %lu (state %ld)\n", pid, shared->ready);
done:
    if (remote && !VirtualFreeEx(proc, remote, 0, MEM_RELEASE))
        fwprintf(stderr, L"ldtrack: VirtualFreeEx failed (error %lu)\n", GetLastError());
    UnmapViewOfFile(shared);
    CloseHandle(map);
    return ok;
}

static int cmd_run(int argc, wchar_t **argv)
{
    ld_config cfg;
    static wchar_t cmd[32768];
    default_config(&cfg);
    int i = parse_options(argc, argv, 2, &cfg);
    if (i < 0) return 2;
    if (i >= argc || wcscmp(argv[i], L"--") != 0 || i + 1 >= argc) { usage(); return 2; }
    cmd[0] = 0;
    for (int k = i + 1; k < argc; k++)
        if (!append_arg(cmd, sizeof cmd / sizeof cmd[0], argv[k])) { fwprintf(stderr, L"ldtrack: command line too long\n"); return 2; }

    STARTUPINFOW si;
    PROCESS_INFORMATION pi;
    memset(&si, 0, sizeof si);
    si.cb = sizeof si;
    if (!CreateProcessW(NULL, cmd, NULL, NULL, TRUE, CREATE_SUSPENDED, NULL, NULL, &si, &pi)) {
        fwprintf(stderr, L"ldtrack: cannot start %ls (error %lu)\n", cmd, GetLastError());
        return 2;
    }
    fwprintf(stderr, L"ldtrack: started pid %lu\n", pi.dwProcessId);
    fflush(stderr);
    if (!inject(pi.hProcess, pi.dwProcessId, &cfg)) {
        fwprintf(stderr, L"ldtrack: injection failed, terminating pid %lu\n", pi.dwProcessId);
        if (!TerminateProcess(pi.hProcess, 3)) fwprintf(stderr, L"ldtrack: TerminateProcess failed (error %lu)\n", GetLastError());
        return 2;
    }
    if (ResumeThread(pi.hThread) == (DWORD)-1) {
        fwprintf(stderr, L"ldtrack: ResumeThread failed (error %lu)\n", GetLastError());
        return 2;
    }
    CloseHandle(pi.hThread);
    if (WaitForSingleObject(pi.hProcess, INFINITE) != WAIT_OBJECT_0) {
        fwprintf(stderr, L"ldtrack: wait failed (error %lu)\n", GetLastError());
        return 2;
    }
    DWORD code = 0;
    if (!GetExitCodeProcess(pi.hProcess, &code)) code = 2;
    CloseHandle(pi.hProcess);
    return (int)code;
}

static int cmd_attach(int argc, wchar_t **argv)
{
    ld_config cfg;
    uint32_t pid;
    if (argc < 3 || !parse_u32(argv[2], &pid)) { usage(); return 2; }
    default_config(&cfg);
    cfg.attached = 1;
    int i = parse_options(argc, argv, 3, &cfg);
    if (i < 0) return 2;
    if (i != argc) { usage(); return 2; }
    wchar_t name[64];
    swprintf(name, 64, L"Local\\ldtrack-ctl-%u", pid);
    HANDLE existing = OpenFileMappingW(FILE_MAP_READ, FALSE, name);
    if (existing) {            /* a second LoadLibrary would not run DllMain again */
        CloseHandle(existing);
        fwprintf(stderr, L"ldtrack: process %u is already tracked\n", pid);
        return 2;
    }
    HANDLE proc = OpenProcess(PROCESS_CREATE_THREAD | PROCESS_QUERY_INFORMATION |
                              PROCESS_VM_OPERATION | PROCESS_VM_WRITE | PROCESS_VM_READ, FALSE, pid);
    if (!proc) { fwprintf(stderr, L"ldtrack: OpenProcess(%u) failed (error %lu)\n", pid, GetLastError()); return 2; }
    int ok = inject(proc, pid, &cfg);
    CloseHandle(proc);
    if (ok) wprintf(L"ldtrack: tracking pid %u\n", pid);
    return ok ? 0 : 2;
}

/* Waits for h, but gives up at once when the process exits.  Returns 0 when
 * h was signaled, 1 when the process ended, 2 on timeout or error. */
static int wait_or_exit(HANDLE h, HANDLE proc, DWORD ms)
{
    HANDLE hs[2] = { h, proc };
    DWORD w = WaitForMultipleObjects(2, hs, FALSE, ms);
    if (w == WAIT_OBJECT_0 || w == WAIT_ABANDONED_0) return 0;
    if (w == WAIT_OBJECT_0 + 1) return 1;
    return 2;
}

/* One request to the tracker in pid; the caller holds the request mutex. */
static int request(ld_control *ctl, HANDLE req, HANDLE done, HANDLE proc, uint32_t op, DWORD pid)
{
    ctl->op = op;
    ctl->status = -1;
    ResetEvent(done);
    if (!SetEvent(req)) { fwprintf(stderr, L"ldtrack: SetEvent failed (error %lu)\n", GetLastError()); return 0; }
    int w = wait_or_exit(done, proc, 120000);
    if (w == 1) { fwprintf(stderr, L"ldtrack: process %lu exited before it answered\n", pid); return 0; }
    if (w != 0) { fwprintf(stderr, L"ldtrack: no answer from process %lu\n", pid); return 0; }
    if (ctl->status != 0) { fwprintf(stderr, L"ldtrack: tracker in process %lu failed (error %ld)\n", pid, ctl->status); return 0; }
    return 1;
}

/*
 * ldtrack dump: the dump is written here, from outside the target, as
 * Microsoft advises for MiniDumpWriteDump.  The tracker only copies its table
 * into one buffer in its own memory (LD_OP_SNAPSHOT); we read it with
 * ReadProcessMemory, tell the tracker to free it, and pass it to
 * MiniDumpWriteDump as the user stream.  Every wait also waits for the
 * process: if it exits, we stop at once, and a half-written file is deleted.
 */
static int cmd_dump(int argc, wchar_t **argv)
{
    uint32_t pid;
    int full = 0;
    const wchar_t *out = NULL;
    wchar_t path[LD_PATH_CHARS], tmp[LD_PATH_CHARS + 16], name[64];
    if (argc < 3 || !parse_u32(argv[2], &pid)) { usage(); return 2; }
    for (int i = 3; i < argc; i++) {
        if (wcscmp(argv[i], L"--full") == 0) full = 1;
        else if (wcscmp(argv[i], L"-o") == 0 && i + 1 < argc) out = argv[++i];
        else { usage(); return 2; }
    }
    if (!out) { usage(); return 2; }
    if (!GetFullPathNameW(out, LD_PATH_CHARS, path, NULL)) {
        fwprintf(stderr, L"ldtrack: bad path %ls (error %lu)\n", out, GetLastError());
        return 2;
    }
    HANDLE proc = OpenProcess(PROCESS_QUERY_INFORMATION | PROCESS_VM_READ | PROCESS_DUP_HANDLE | SYNCHRONIZE, FALSE, pid);
    if (!proc) { fwprintf(stderr, L"ldtrack: OpenProcess(%u) failed (error %lu)\n", pid, GetLastError()); return 2; }
    swprintf(name, 64, L"Local\\ldtrack-ctl-%u", pid);
    HANDLE map = OpenFileMappingW(FILE_MAP_READ | FILE_MAP_WRITE, FALSE, name);
    if (!map) { fwprintf(stderr, L"ldtrack: process %u is not tracked (error %lu)\n", pid, GetLastError()); return 2; }
    ld_control *ctl = MapViewOfFile(map, FILE_MAP_READ | FILE_MAP_WRITE, 0, 0, sizeof *ctl);
    swprintf(name, 64, L"Local\\ldtrack-dump-%u", pid);
    HANDLE req = OpenEventW(EVENT_MODIFY_STATE, FALSE, name);
    swprintf(name, 64, L"Local\\ldtrack-done-%u", pid);
    HANDLE done = OpenEventW(SYNCHRONIZE | EVENT_MODIFY_STATE, FALSE, name);
    swprintf(name, 64, L"Local\\ldtrack-lock-%u", pid);
    HANDLE lock = CreateMutexW(NULL, FALSE, name);
    if (!ctl || !req || !done || !lock) { fwprintf(stderr, L"ldtrack: cannot open control objects (error %lu)\n", GetLastError()); return 2; }
    int w = wait_or_exit(lock, proc, 600000);
    if (w == 1) { fwprintf(stderr, L"ldtrack: process %u exited\n", pid); return 2; }
    if (w != 0) { fwprintf(stderr, L"ldtrack: another dump of process %u did not finish\n", pid); return 2; }

    int rc = 2;
    void *stream = NULL;
    HANDLE f = INVALID_HANDLE_VALUE;
    uint32_t dump_type = LD_DUMP_TYPE(full);
    char type_names[512];
    ld_dump_type_names(dump_type, type_names, sizeof type_names);
    ctl->dump_type = dump_type;          /* recorded in the stream's metadata */
    if (!request(ctl, req, done, proc, LD_OP_SNAPSHOT, pid)) goto out;
    uint64_t size = ctl->size, addr = ctl->addr;
    stream = VirtualAlloc(NULL, (SIZE_T)size, MEM_RESERVE | MEM_COMMIT, PAGE_READWRITE);
    SIZE_T got = 0;
    if (!stream || !ReadProcessMemory(proc, (void *)(uintptr_t)addr, stream, (SIZE_T)size, &got) || got != size) {
        if (WaitForSingleObject(proc, 0) == WAIT_OBJECT_0) fwprintf(stderr, L"ldtrack: process %u exited\n", pid);
        else fwprintf(stderr, L"ldtrack: cannot read the allocation stream (error %lu)\n", GetLastError());
        goto out;
    }
    if (!request(ctl, req, done, proc, LD_OP_RELEASE, pid)) goto out;

    swprintf(tmp, LD_PATH_CHARS + 16, L"%ls.partial", path);
    f = CreateFileW(tmp, GENERIC_READ | GENERIC_WRITE, 0, NULL, CREATE_ALWAYS, FILE_ATTRIBUTE_NORMAL, NULL);
    if (f == INVALID_HANDLE_VALUE) { fwprintf(stderr, L"ldtrack: cannot create %ls (error %lu)\n", tmp, GetLastError()); goto out; }
    MINIDUMP_USER_STREAM us = { LD_STREAM_TYPE, (ULONG)size, stream };
    MINIDUMP_USER_STREAM_INFORMATION usi = { 1, &us };
    /* With the memory-info list and thread times (Wine's dbghelp ignores both). */
    MINIDUMP_TYPE type = (MINIDUMP_TYPE)dump_type;
    SymSetOptions(SYMOPT_DEFERRED_LOADS | SYMOPT_NO_IMAGE_SEARCH | SYMOPT_IGNORE_CVREC);
    BOOL ok = MiniDumpWriteDump(proc, pid, f, type, NULL, &usi, NULL);
    DWORD err = GetLastError();
    CloseHandle(f);
    if (ok && WaitForSingleObject(proc, 0) == WAIT_OBJECT_0) {
        /* the process ended while its memory was being read: incomplete */
        ok = FALSE;
        err = ERROR_PROCESS_ABORTED;
    }
    if (!ok) {
        fwprintf(stderr, L"ldtrack: MiniDumpWriteDump failed (error %lu)%ls\n", err,
                 WaitForSingleObject(proc, 0) == WAIT_OBJECT_0 ? L": the process exited" : L"");
        DeleteFileW(tmp);
        goto out;
    }
    if (!MoveFileExW(tmp, path, MOVEFILE_REPLACE_EXISTING)) {
        fwprintf(stderr, L"ldtrack: cannot rename %ls (error %lu)\n", tmp, GetLastError());
        DeleteFileW(tmp);
        goto out;
    }
    wprintf(L"dump type 0x%08x (%hs)\n%ls\n", dump_type, type_names, path);
    rc = 0;
out:
    if (stream) VirtualFree(stream, 0, MEM_RELEASE);
    ReleaseMutex(lock);
    CloseHandle(lock);
    UnmapViewOfFile(ctl);
    CloseHandle(map);
    CloseHandle(req);
    CloseHandle(done);
    CloseHandle(proc);
    return rc;
}

int wmain(int argc, wchar_t **argv)
{
    if (argc < 2) { usage(); return 2; }
    if (wcscmp(argv[1], L"run") == 0) return cmd_run(argc, argv);
    if (wcscmp(argv[1], L"attach") == 0) return cmd_attach(argc, argv);
    if (wcscmp(argv[1], L"dump") == 0) return cmd_dump(argc, argv);
    usage();
    return 2;
}
