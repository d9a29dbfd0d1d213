/*
 * dump.c - writes a minidump of the current process with the allocation
 * stream attached as a MINIDUMP_USER_STREAM (type 0x4C440001).
 *
 * Verified early on Wine 8: its dbghelp MiniDumpWriteDump writes user streams
 * into the stream directory as given, so no post-processing of the file is
 * needed (see README "Wine notes").
 *
 * The dump is written to "<path>.partial" and renamed when complete, so a
 * reader polling the output folder never sees a half-written file.
 * The calling thread holds the recursion guard: dbghelp allocates, and those
 * allocations must neither be recorded nor wait on our table lock.
 */
#include "ldtrack.h"
#include <dbghelp.h>
#include <stdio.h>
#include <wchar.h>
#include <stdlib.h>

static int g_attached;
static ld_region g_image;           /* ldtrack.dll's image (tracker region kind 5) */
static SRWLOCK g_snapshot_lock = SRWLOCK_INIT;   /* one snapshot at a time (modstr's buffer) */

void dump_set_attached(int attached) { g_attached = attached; }

void dump_set_image(HMODULE self)
{
    const IMAGE_DOS_HEADER *dos = (const IMAGE_DOS_HEADER *)self;
    const IMAGE_NT_HEADERS *nt = (const IMAGE_NT_HEADERS *)((const uint8_t *)self + dos->e_lfanew);
    g_image.base = (uint64_t)(uintptr_t)self;
    g_image.size = tbl_page_round(nt->OptionalHeader.SizeOfImage);
    g_image.kind = LD_REGION_IMAGE;
}

/* ldtrack.h's dump-type bits are dbghelp's. */
_Static_assert(LD_MDT_FULL_MEMORY == MiniDumpWithFullMemory, "MiniDumpWithFullMemory");
_Static_assert(LD_MDT_HANDLE_DATA == MiniDumpWithHandleData, "MiniDumpWithHandleData");
_Static_assert(LD_MDT_UNLOADED_MODULES == MiniDumpWithUnloadedModules, "MiniDumpWithUnloadedModules");
_Static_assert(LD_MDT_PROCESS_THREAD_DATA == MiniDumpWithProcessThreadData, "MiniDumpWithProcessThreadData");
_Static_assert(LD_MDT_FULL_MEMORY_INFO == MiniDumpWithFullMemoryInfo, "MiniDumpWithFullMemoryInfo");
_Static_assert(LD_MDT_THREAD_INFO == MiniDumpWithThreadInfo, "MiniDumpWithThreadInfo");

/* The whole stream (header, tables, metadata, module strings, tracker
 * regions) in one VirtualAlloc'd buffer.  dump_type is the MINIDUMP_TYPE the dump will be
 * written with (metadata dump_type, dump_type_flags).  The module strings are
 * read first, with no table lock held (modstr.c); without them the stream is
 * still written, without them (module_strings_offset 0). */
void *dump_stream(uint32_t dump_type, int declare_self, size_t *size)
{
    char meta[2048], hooks[1024], names[512];
    hooks_names(hooks, sizeof hooks);
    ld_dump_type_names(dump_type, names, sizeof names);
    snprintf(meta, sizeof meta,
             "tracker=ldtrack 0.3\nallocator_modules=ldtrack.dll\nhooks=%s\nmax_depth=%u\n"
             "tracking_began=%s\ndump_type=0x%08x\ndump_type_flags=%s\n",
             hooks, tbl_max_depth(), g_attached ? "attach" : "launch", dump_type, names);
    size_t mstr_size = 0;
    uint32_t modules = 0;
    ld_region extra[LD_EXTRA_REGIONS];
    uint32_t nextra = 0;
    AcquireSRWLockExclusive(&g_snapshot_lock);
    void *mstr = modstr_collect(&mstr_size, &modules, &extra[nextra]);
    if (mstr) nextra++;
    if (g_image.size) extra[nextra++] = g_image;
    void *stream = tbl_snapshot(meta, mstr, mstr_size, extra, nextra, declare_self, size);
    ReleaseSRWLockExclusive(&g_snapshot_lock);
    return stream;
}

DWORD dump_write(const wchar_t *path, int full)
{
    wchar_t tmp[LD_PATH_CHARS + 16];
    size_t size = 0;
    DWORD err = 0;
    int guarded = hooks_guard_enter();
    ULONGLONG t0 = GetTickCount64();

    uint32_t dump_type = LD_DUMP_TYPE(full);
    void *stream = dump_stream(dump_type, 1, &size);
    if (!stream) {
        err = ERROR_OUTOFMEMORY;
        goto out;
    }
    if (swprintf(tmp, sizeof tmp / sizeof tmp[0], L"%ls.partial", path) < 0) {
        err = ERROR_FILENAME_EXCED_RANGE;
        goto out_free;
    }
    HANDLE f = CreateFileW(tmp, GENERIC_READ | GENERIC_WRITE, 0, NULL, CREATE_ALWAYS,
                           FILE_ATTRIBUTE_NORMAL, NULL);
    if (f == INVALID_HANDLE_VALUE) {
        err = GetLastError();
        ld_log("cannot create %ls (error %lu)", tmp, err);
        goto out_free;
    }
    MINIDUMP_USER_STREAM us = { LD_STREAM_TYPE, (ULONG)size, stream };
    MINIDUMP_USER_STREAM_INFORMATION usi = { 1, &us };
    /* Memory-info list and thread times too (Wine's dbghelp ignores both). */
    MINIDUMP_TYPE type = (MINIDUMP_TYPE)dump_type;
    /* Wine 8's dbghelp crashed (heap corruption in SymCleanup/pdb_free_file)
     * on the second MiniDumpWriteDump in one process when it was allowed to
     * look up image/PDB files for the modules; with these options three
     * dumps in a row succeed.  A minidump needs no symbols anyway. */
    SymSetOptions(SYMOPT_DEFERRED_LOADS | SYMOPT_NO_IMAGE_SEARCH | SYMOPT_IGNORE_CVREC);
    ULONGLONG t1 = GetTickCount64();
    BOOL ok = MiniDumpWriteDump(GetCurrentProcess(), GetCurrentProcessId(), f, type,
                                NULL, &usi, NULL);
    ULONGLONG t2 = GetTickCount64();
    if (getenv("LDTRACK_DEBUG_TIMING"))
        ld_log("snapshot %llu ms, MiniDumpWriteDump %llu ms", (unsigned long long)(t1 - t0),
               (unsigned long long)(t2 - t1));
    if (!ok) {
        err = GetLastError();
        if (err == 0) err = ERROR_WRITE_FAULT;
        ld_log("MiniDumpWriteDump failed (error %lu)", err);
    }
    if (!CloseHandle(f) && ok) {
        err = GetLastError();
        ok = FALSE;
    }
    if (ok && !MoveFileExW(tmp, path, MOVEFILE_REPLACE_EXISTING)) {
        err = GetLastError();
        ld_log("cannot rename %ls to %ls (error %lu)", tmp, path, err);
    } else if (ok) {
        ld_log("wrote %ls (dump type 0x%08x, allocation stream %llu bytes, %llu ms)", path,
               dump_type, (unsigned long long)size, (unsigned long long)(GetTickCount64() - t0));
    }
    if (!ok && !DeleteFileW(tmp))
        ld_log("cannot delete %ls (error %lu)", tmp, GetLastError());
out_free:
    if (!VirtualFree(stream, 0, MEM_RELEASE))
        ld_log("VirtualFree(snapshot) failed (error %lu)", GetLastError());
out:
    if (guarded) hooks_guard_leave();
    return err;
}
