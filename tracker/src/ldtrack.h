/*
 * ldtrack.h - shared definitions for the ldtrack tracker DLL and launcher.
 *
 * The allocation stream layout follows docs/allocation-stream.md
 * (version 1.0).  The launcher and the DLL talk through named kernel objects
 * whose names contain the target's process id, so several tracked processes
 * can coexist:
 *   Local\ldtrack-cfg-<pid>   file mapping, ld_config, written by launcher
 *                             before injection, read by DllMain.
 *   Local\ldtrack-ctl-<pid>   file mapping, ld_control, created by the DLL:
 *                             the "dump now" request (path, full flag, result).
 *   Local\ldtrack-dump-<pid>  auto-reset event: launcher -> DLL "dump now".
 *   Local\ldtrack-done-<pid>  auto-reset event: DLL -> launcher "dump done".
 */
#ifndef LDTRACK_H
#define LDTRACK_H

#include <windows.h>
#include <stdint.h>

#define LD_STREAM_TYPE      0x4C440001u   /* minidump user stream type      */
#define LD_MAGIC            0x4B41454Cu   /* "LEAK"                          */
#define LD_HEADER_SIZE      96u
#define LD_NO_STACK         0xFFFFFFFFu

/* allocator kinds (allocation record byte 36) */
enum { LD_KIND_UNKNOWN = 0, LD_KIND_HEAP = 1, LD_KIND_CRT = 2,
       LD_KIND_VIRTUAL = 3, LD_KIND_COTASK = 4, LD_KIND_BSTR = 5 };

/* header flags */
#define LD_FLAG_RETURN_ADDRESSES 0x1u
#define LD_FLAG_DROPPED          0x2u
#define LD_FLAG_TRUNCATED        0x4u

/* defaults and limits */
#define LD_DEFAULT_MAX_ALLOCATIONS (256u * 1024u)
#define LD_DEFAULT_MAX_STACKS      (64u * 1024u)
#define LD_DEFAULT_MAX_DEPTH       32u
#define LD_MAX_DEPTH_LIMIT         60u   /* RtlCaptureStackBackTrace limit */

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
    volatile LONG ready;        /* set by DLL: 1 = tracking, -1 = init failed */
    wchar_t  out_dir[LD_PATH_CHARS];
} ld_config;

/* Dump request block (named mapping ldtrack-ctl-<pid>). */
typedef struct ld_control {
    volatile LONG status;       /* result of last request: 0 ok, else Win32 error */
    uint32_t full;
    wchar_t  path[LD_PATH_CHARS];
} ld_control;

/* ---- table.c ---- */
int      tbl_init(uint32_t max_allocations, uint32_t max_stacks, uint32_t max_depth);
void     tbl_add(uint64_t addr, uint64_t size, uint64_t heap, uint8_t kind,
                 void *const *frames, uint32_t nframes, int truncated);
int      tbl_remove(uint64_t addr, uint64_t *old_size);  /* 1 if it was tracked */
uint64_t tbl_outstanding_bytes(void);
/* Builds the whole allocation stream into a VirtualAlloc'd buffer. */
void    *tbl_snapshot(const char *metadata, size_t *out_size);
uint32_t tbl_max_depth(void);

/* ---- hooks.c ---- */
int      hooks_install(HMODULE self);
void     hooks_names(char *buf, size_t cap);
void     hooks_disable(void);
int      hooks_guard_enter(void);   /* 1 if we took the guard */
void     hooks_guard_leave(void);

/* ---- dump.c ---- */
DWORD    dump_write(const wchar_t *path, int full);

/* ---- ldtrack_dll.c ---- */
void     ld_log(const char *fmt, ...);

#endif
