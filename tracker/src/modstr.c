/*
 * modstr.c - the module-strings section of the allocation stream (format 1.2,
 * docs/allocation-stream.md section 13): for each module loaded at snapshot
 * time, CompanyName, ProductName, FileDescription, FileVersion and
 * ProductVersion from its file's version resource (GetFileVersionInfoW and
 * VerQueryValueW, in this process), so that a report can name a module's
 * vendor without a copy of the DLL.
 *
 * Called before the tables are copied, with no table lock held: reading a
 * file's version resource takes the loader lock and allocates, and a thread
 * that holds the loader lock may be waiting on a table lock.  The caller holds
 * the recursion guard, so these allocations are not recorded.  Every string
 * is cut to LD_MODSTR_MAX bytes of UTF-8 at a character boundary, and at most
 * LD_MODSTR_MAX_MODULES modules are recorded.
 */
#include "ldtrack.h"
#include <tlhelp32.h>
#include <wchar.h>

#define RECORD_HEAD 24u
#define RECORD_MAX  (RECORD_HEAD + 5u * LD_MODSTR_MAX + 8u)

static const wchar_t *const KEYS[5] = {
    L"CompanyName", L"ProductName", L"FileDescription", L"FileVersion", L"ProductVersion" };

/* UTF-8 of at most LD_MODSTR_MAX bytes, cut at a character boundary. */
static uint16_t utf8_of(const wchar_t *w, UINT wlen, char *out)
{
    char tmp[LD_MODSTR_MAX * 3 + 4];
    if (!w || wlen == 0) return 0;
    size_t n = wcsnlen(w, wlen < LD_MODSTR_MAX ? wlen : LD_MODSTR_MAX);
    while (n && (w[n - 1] == L' ' || w[n - 1] == L'\t')) n--;
    if (n == 0) return 0;
    int len = WideCharToMultiByte(CP_UTF8, 0, w, (int)n, tmp, (int)sizeof tmp, NULL, NULL);
    if (len <= 0) return 0;
    size_t k = (size_t)len;
    if (k > LD_MODSTR_MAX) {
        k = LD_MODSTR_MAX;
        while (k > 0 && ((unsigned char)tmp[k] & 0xC0) == 0x80) k--;
    }
    memcpy(out, tmp, k);
    return (uint16_t)k;
}

/* The string table to read: the first translation, then the usual ones. */
static int read_strings(void *data, char strings[5][LD_MODSTR_MAX], uint16_t lens[5])
{
    wchar_t blocks[4][16];
    int nblocks = 0;
    struct { WORD lang, cp; } *tr = NULL;
    UINT trlen = 0;
    if (VerQueryValueW(data, L"\\VarFileInfo\\Translation", (void **)&tr, &trlen) && tr &&
        trlen >= sizeof *tr)
        swprintf(blocks[nblocks++], 16, L"%04x%04x", tr->lang, tr->cp);
    wcscpy(blocks[nblocks++], L"040904b0");
    wcscpy(blocks[nblocks++], L"040904e4");
    wcscpy(blocks[nblocks++], L"04090000");
    for (int b = 0; b < nblocks; b++) {
        int found = 0;
        for (int i = 0; i < 5; i++) {
            wchar_t sub[80];
            void *p = NULL;
            UINT len = 0;
            lens[i] = 0;
            swprintf(sub, 80, L"\\StringFileInfo\\%ls\\%ls", blocks[b], KEYS[i]);
            if (VerQueryValueW(data, sub, &p, &len) && p && len) {
                lens[i] = utf8_of((const wchar_t *)p, len, strings[i]);
                found |= lens[i] != 0;
            }
        }
        if (found) return 1;
    }
    return 0;
}

/* One module's record at out (RECORD_MAX bytes of room); returns its size. */
static size_t record(uint8_t *out, const MODULEENTRY32W *m)
{
    char strings[5][LD_MODSTR_MAX];
    uint16_t lens[5] = { 0 };
    uint8_t status = LD_MODSTR_NOT_READ;
    DWORD handle = 0, size = GetFileVersionInfoSizeW(m->szExePath, &handle);
    if (size == 0) {
        DWORD e = GetLastError();
        status = (e == ERROR_RESOURCE_DATA_NOT_FOUND || e == ERROR_RESOURCE_TYPE_NOT_FOUND ||
                  e == ERROR_RESOURCE_NAME_NOT_FOUND || e == ERROR_RESOURCE_LANG_NOT_FOUND)
                     ? LD_MODSTR_NO_RESOURCE : LD_MODSTR_NOT_READ;
    } else if (size <= LD_MODSTR_MAX_RESOURCE) {
        void *data = HeapAlloc(GetProcessHeap(), 0, size);
        if (data && GetFileVersionInfoW(m->szExePath, 0, size, data))
            status = read_strings(data, strings, lens) ? LD_MODSTR_READ : LD_MODSTR_NO_RESOURCE;
        if (data) HeapFree(GetProcessHeap(), 0, data);
    }
    uint64_t base = (uint64_t)(uintptr_t)m->modBaseAddr;
    uint32_t image_size = m->modBaseSize;
    memset(out, 0, RECORD_HEAD);
    memcpy(out, &base, 8);
    memcpy(out + 8, &image_size, 4);
    size_t at = RECORD_HEAD;
    for (int i = 0; i < 5; i++) {
        memcpy(out + 12 + 2 * i, &lens[i], 2);
        memcpy(out + at, strings[i], lens[i]);
        at += lens[i];
    }
    out[22] = status;
    size_t padded = (at + 7) & ~(size_t)7;
    memset(out + at, 0, padded - at);
    return padded;
}

/* The section's buffer, kept between snapshots (grown when too small) so that
 * the stream can declare it as a tracker region (kind 4) while a dump is
 * written; dump.c serializes the callers. */
static uint8_t *g_buf;
static size_t   g_cap;

void *modstr_collect(size_t *size, uint32_t *modules, ld_region *region)
{
    *size = 0;
    *modules = 0;
    memset(region, 0, sizeof *region);
    HANDLE snap = CreateToolhelp32Snapshot(TH32CS_SNAPMODULE, 0);
    if (snap == INVALID_HANDLE_VALUE) {
        ld_log("module strings: CreateToolhelp32Snapshot failed (error %lu)", GetLastError());
        return NULL;
    }
    MODULEENTRY32W m;
    uint32_t count = 0;
    m.dwSize = sizeof m;
    for (BOOL ok = Module32FirstW(snap, &m); ok && count < LD_MODSTR_MAX_MODULES; ok = Module32NextW(snap, &m))
        count++;
    size_t cap = 8 + (size_t)count * RECORD_MAX;
    if (cap > g_cap) {
        if (g_buf && !VirtualFree(g_buf, 0, MEM_RELEASE))
            ld_log("VirtualFree(module strings) failed (error %lu)", GetLastError());
        g_cap = 0;
        g_buf = VirtualAlloc(NULL, cap, MEM_RESERVE | MEM_COMMIT, PAGE_READWRITE);
        if (!g_buf) {
            ld_log("module strings: VirtualAlloc(%llu) failed (error %lu)", (unsigned long long)cap, GetLastError());
            CloseHandle(snap);
            return NULL;
        }
        g_cap = cap;
    }
    uint8_t *buf = g_buf;
    size_t at = 8;
    uint32_t n = 0;
    m.dwSize = sizeof m;
    /* A module loaded between the two walks is left out (count bounds n). */
    for (BOOL ok = Module32FirstW(snap, &m); ok && n < count; ok = Module32NextW(snap, &m)) {
        at += record(buf + at, &m);
        n++;
    }
    CloseHandle(snap);
    memcpy(buf, &n, 4);
    memset(buf + 4, 0, 4);
    *size = at;
    *modules = n;
    region->base = (uint64_t)(uintptr_t)buf;
    region->size = tbl_page_round(g_cap);
    region->kind = LD_REGION_MODSTR;
    return buf;
}
