/*
 * ldtrack.h - shared definitions for the ldtrack tracker DLL and launcher.
 *
 * The allocation stream layout follows docs/allocation-stream.md
 * (version 1.3: the 128-byte header locates the module-strings section (1.2)
 * and the tracker-regions section (1.3): the memory the tracker itself keeps
 * in the process, which a pointer scan must not take for references).  The launcher and the DLL talk through named kernel objects
 * whose names contain the target's process id, so several tracked processes
 * can coexist:
 *   Local\ldtrack-cfg-<pid>   file mapping, ld_config, written by launcher
 *                             before injection, read by DllMain.
 *   Local\ldtrack-ctl-<pid>   file mapping, ld_control, created by the DLL:
 *                             a request (op) and its answer (status, and for
 *                             LD_OP_SNAPSHOT the address and size of the
 *                             stream in the target's memory).
 *   Local\ldtrack-dump-<pid>  auto-reset event: launcher -> DLL "request".
 *   Local\ldtrack-done-<pid>  auto-reset event: DLL -> launcher "answered".
 *   Local\ldtrack-lock-<pid>  mutex: one requesting launcher at a time.
 */
#ifndef LDTRACK_H
#define LDTRACK_H

#include <windows.h>
#include <stdint.h>
#include <string.h>

#define LD_STREAM_TYPE      0x4C440001u   /* minidump user stream type      */
#define LD_MAGIC            0x4B41454Cu   /* "LEAK"                          */
#define LD_HEADER_SIZE      96u
#define LD_HEADER_SIZE_1_2  112u          /* + module_strings_offset/size   */
#define LD_HEADER_SIZE_1_3  128u          /* + tracker_regions_offset/count */
#define LD_REGION_SIZE      24u           /* one tracker-regions record     */
#define LD_NO_STACK         0xFFFFFFFFu

/* allocator kinds (allocation record byte 36) */
enum { LD_KIND_UNKNOWN = 0, LD_KIND_HEAP = 1, LD_KIND_CRT = 2,
       LD_KIND_VIRTUAL = 3, LD_KIND_COTASK = 4, LD_KIND_BSTR = 5,
       LD_KIND_LOCAL = 6 /* LocalAlloc/GlobalAlloc, stream 1.1 */ };

/* header flags */
#define LD_FLAG_RETURN_ADDRESSES 0x1u
#define LD_FLAG_DROPPED          0x2u
#define LD_FLAG_TRUNCATED        0x4u

/* defaults and limits */
#define LD_DEFAULT_MAX_ALLOCATIONS (256u * 1024u)
#define LD_DEFAULT_MAX_STACKS      (64u * 1024u)
#define LD_DEFAULT_MAX_DEPTH       32u
#define LD_MAX_DEPTH_LIMIT         60u   /* RtlCaptureStackBackTrace limit */

/* Module strings (stream 1.2, docs/allocation-stream.md section 13). */
#define LD_MODSTR_MAX          256u     /* bytes of UTF-8 in one string      */
#define LD_MODSTR_MAX_MODULES  8192u    /* records in one snapshot, at most  */
#define LD_MODSTR_MAX_RESOURCE (1u << 20) /* larger version resources: not read */
enum { LD_MODSTR_READ = 0, LD_MODSTR_NO_RESOURCE = 1, LD_MODSTR_NOT_READ = 2 };

/* Tracker regions (stream 1.3, docs/allocation-stream.md section 14): kinds. */
enum { LD_REGION_OTHER = 0, LD_REGION_ALLOCATIONS = 1, LD_REGION_STACKS = 2,
       LD_REGION_SNAPSHOT = 3, LD_REGION_MODSTR = 4, LD_REGION_IMAGE = 5 };
typedef struct ld_region { uint64_t base, size; uint32_t kind; } ld_region;
/* Regions dump.c adds to table.c's own: the module-strings buffer, the image. */
#define LD_EXTRA_REGIONS 2

/* MINIDUMP_TYPE bits (dbghelp.h's values; dump.c checks them against it).  Both
 * the DLL's own dumps and "ldtrack dump" ask for LD_DUMP_TYPE(full), and the
 * stream's metadata says so (dump_type, dump_type_flags). */
#define LD_MDT_FULL_MEMORY         0x00000002u
#define LD_MDT_HANDLE_DATA         0x00000004u
#define LD_MDT_UNLOADED_MODULES    0x00000020u
#define LD_MDT_PROCESS_THREAD_DATA 0x00000100u
#define LD_MDT_FULL_MEMORY_INFO    0x00000800u
#define LD_MDT_THREAD_INFO         0x00001000u
#define LD_DUMP_TYPE(full) (LD_MDT_HANDLE_DATA | LD_MDT_UNLOADED_MODULES |            \
                            LD_MDT_PROCESS_THREAD_DATA | LD_MDT_FULL_MEMORY_INFO |    \
                            LD_MDT_THREAD_INFO | ((full) ? LD_MDT_FULL_MEMORY : 0u))

/* The names of a dump type's bits, comma-separated, without "MiniDump"
 * ("Normal" for 0; an unnamed bit as its hex value). */
static inline void ld_dump_type_names(uint32_t type, char *buf, size_t cap)
{
    static const char *const names[24] = {
        "WithDataSegs", "WithFullMemory", "WithHandleData", "FilterMemory",
        "ScanMemory", "WithUnloadedModules", "WithIndirectlyReferencedMemory",
        "FilterModulePaths", "WithProcessThreadData", "WithPrivateReadWriteMemory",
        "WithoutOptionalData", "WithFullMemoryInfo", "WithThreadInfo", "WithCodeSegs",
        "WithoutAuxiliaryState", "WithFullAuxiliaryState", "WithPrivateWriteCopyMemory",
        "IgnoreInaccessibleMemory", "WithTokenInformation", "WithModuleHeaders",
        "FilterTriage", "WithAvxXStateContext", "WithIptTrace",
        "ScanInaccessiblePartialPages" };
    size_t n = 0;
    if (cap == 0) return;
    buf[0] = 0;
    if (type == 0) { lstrcpynA(buf, "Normal", (int)cap); return; }
    for (unsigned bit = 0; bit < 32; bit++) {
        if (!(type & (1u << bit))) continue;
        char one[16];
        const char *name = bit < 24 ? names[bit] : one;
        if (bit >= 24) wsprintfA(one, "0x%08x", 1u << bit);
        size_t len = (size_t)lstrlenA(name);
        if (n + (n ? 1 : 0) + len + 1 > cap) break;
        if (n) buf[n++] = ',';
        memcpy(buf + n, name, len);
        n += len;
        buf[n] = 0;
    }
}

#define LD_CFG_MAGIC 0x4746434Cu  /* "LCFG" */
#define LD_PATH_CHARS 1024

/* Configuration passed from launcher to DLL (named mapping ldtrack-cfg-<pid>). */
typedef struct ld_config {
    uint32_t magic;             /* LD_CFG_MAGIC */
    uint32_t max_allocations;
    uint32_t max_stacks;
    uint32_t max_depth;
    uint64_t dump_every_bytes;  /* 0: rule off */
    uint32_t dump_interval_s;   /* 0: rule off */
    uint32_t max_dumps;         /* 0: unlimited rule dumps */
    uint32_t full;              /* rule dumps with full memory */
    uint32_t attached;          /* 1: ldtrack attach (tracking began after start) */
    uint32_t dump_at_exit;      /* 1: write a dump when the process exits */
    volatile LONG ready;        /* set by DLL: 1 = tracking, -1 = init failed */
    wchar_t  out_dir[LD_PATH_CHARS];
} ld_config;

/* Dump request block (named mapping ldtrack-ctl-<pid>). */
enum { LD_OP_SNAPSHOT = 1, LD_OP_RELEASE = 2 };
typedef struct ld_control {
    volatile LONG status;       /* result of last request: 0 ok, else Win32 error */
    uint32_t op;                /* LD_OP_* */
    volatile uint64_t addr;     /* LD_OP_SNAPSHOT: the stream, in the target */
    volatile uint64_t size;
    uint32_t dump_type;         /* LD_OP_SNAPSHOT: the MINIDUMP_TYPE the launcher will ask for */
} ld_control;

/* ---- table.c ---- */
int      tbl_init(uint32_t max_allocations, uint32_t max_stacks, uint32_t max_depth);
/* Records a block; returns its sequence number (0 if dropped). */
uint64_t tbl_add(uint64_t addr, uint64_t size, uint64_t heap, uint8_t kind,
                 void *const *frames, uint32_t nframes, int truncated);
/* Sequence number of the record at addr (0: none), and its size. */
uint64_t tbl_lookup(uint64_t addr, uint64_t *size);
/* Removes the record at addr if it is still the one with sequence seq. */
int      tbl_remove_if(uint64_t addr, uint64_t seq);
/* A mark in every shard's sequence (for tbl_forget_heap). */
void     tbl_mark(uint64_t *marks);
/* Forgets every block of heap made before the marks. */
void     tbl_forget_heap(uint64_t heap, const uint64_t *marks);
uint64_t tbl_outstanding_bytes(void);
#define  LD_SHARDS 64
/* Builds the whole allocation stream (version 1.3) into a VirtualAlloc'd
 * buffer, with module_strings (a section of modstr_collect; NULL: none) and
 * the tracker-regions section: the tables' own regions, the nextra regions
 * given, and, with declare_self, the snapshot buffer itself (only when the
 * buffer still exists while the dump is written: the in-process dumps; an
 * "ldtrack dump" frees it before it writes the dump). */
void    *tbl_snapshot(const char *metadata, const void *module_strings,
                      size_t module_strings_size, const ld_region *extra, uint32_t nextra,
                      int declare_self, size_t *out_size);
/* Rounds a region's size up to whole pages (what VirtualAlloc commits). */
uint64_t tbl_page_round(uint64_t size);
uint32_t tbl_max_depth(void);

/* ---- hooks.c ---- */
int      hooks_install(HMODULE self, int dump_at_exit);
void     hooks_names(char *buf, size_t cap);
void     hooks_disable(void);
int      hooks_guard_enter(void);   /* 1 if we took the guard */
void     hooks_guard_leave(void);

/* ---- modstr.c ---- */
/* The module-strings section of every loaded module, in a VirtualAlloc'd buffer
 * that modstr.c keeps and reuses (NULL on failure; *region: the buffer, for
 * the tracker-regions section); call with no table lock held, one caller at a
 * time (dump.c serializes snapshots). */
void    *modstr_collect(size_t *size, uint32_t *modules, ld_region *region);

/* ---- dump.c ---- */
DWORD    dump_write(const wchar_t *path, int full);
/* VirtualAlloc'd stream whose metadata records dump_type (the launcher's
 * request); declare_self: the buffer exists while the dump is written (an
 * in-process dump), so it is declared as a tracker region (kind 3). */
void    *dump_stream(uint32_t dump_type, int declare_self, size_t *size);
void     dump_set_attached(int attached);
/* ldtrack.dll's own image (base and SizeOfImage), declared in every stream. */
void     dump_set_image(HMODULE self);

/* ---- ldtrack_dll.c ---- */
void     ld_log(const char *fmt, ...);
void     ld_on_exit(void);          /* RtlExitUserProcess hook: --dump-at-exit */

#endif
