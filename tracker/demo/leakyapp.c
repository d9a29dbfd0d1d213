/*
 * leakyapp.c - deterministic leak demo for ldtrack.
 *
 * Start-up: a cache that is kept for the process lifetime (16 x malloc(1000)),
 * plus one block from each of VirtualAlloc (4096), CoTaskMemAlloc (512) and
 * SysAllocString (L"leakyapp", 16 bytes), also kept - these belong to
 * leakyapp.exe, not to the vendor DLL.
 * Each request: a 4096-byte HeapAlloc temp buffer, 8 VendFetchRow() calls
 * (rows 0..7), then the temp buffer is freed.  Only odbcvend.dll leaks:
 * 416 bytes in 2 blocks a request.
 * odbcvend.dll (msvcrt) and ucrtvend.dll (the same vendor code linked against
 * the Universal CRT, api-ms-win-crt-heap-l1-1-0.dll) are loaded with
 * LoadLibraryA after start-up; each row is fetched from both, so each DLL
 * leaks the same amounts.
 * Phases of 100, 100 and 200 requests (cumulative 100, 200, 400).  After phase k
 * the program prints "phase k done pid=P requests=R" and
 *   - with --wait-dir DIR: waits until the file DIR\go<k> exists (the test
 *     takes dump k in the meantime, so each dump sees an exact state);
 *   - otherwise sleeps --sleep-ms (default 300) milliseconds.
 * --grow-kb N makes leakyapp.exe itself keep N KB more a request (to drive
 * --dump-every-mb); odbcvend.dll's numbers do not change.
 * Expected outstanding at dump k, for odbcvend.dll and for ucrtvend.dll each:
 * 2*R_k blocks, 416*R_k bytes:
 *   dump 1: 200 blocks, 41600 bytes; dump 2: 400, 83200; dump 3: 800, 166400.
 */
#include <windows.h>
#include <objbase.h>
#include <oleauto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* odbcvend.dll is loaded at run time, like a real ODBC driver, so the test
 * also proves that modules loaded after injection get hooked (the tracker's
 * LoadLibrary hooks re-patch import tables after each load). */
typedef int (*fetch_row_fn)(int request, int row);

#define CACHE_ENTRIES 16
#define CACHE_SIZE 1000
#define ROWS 8
static void *g_cache[CACHE_ENTRIES];
static void *volatile g_kept;   /* makes --grow-kb blocks escape, so clang keeps them */

static int wait_for_go(const char *dir, int phase)
{
    char path[MAX_PATH];
    snprintf(path, sizeof path, "%s\\go%d", dir, phase);
    for (int i = 0; i < 6000; i++) {                 /* 120 s at most */
        if (GetFileAttributesA(path) != INVALID_FILE_ATTRIBUTES) return 1;
        Sleep(20);
    }
    fprintf(stderr, "leakyapp: timed out waiting for %s\n", path);
    return 0;
}

int main(int argc, char **argv)
{
    const char *wait_dir = NULL;
    int sleep_ms = 300;
    int grow_kb = 0;         /* --grow-kb N: leakyapp itself also keeps N KB a request */
    static const int phases[] = { 100, 100, 200 };
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--wait-dir") == 0 && i + 1 < argc) wait_dir = argv[++i];
        else if (strcmp(argv[i], "--sleep-ms") == 0 && i + 1 < argc) sleep_ms = atoi(argv[++i]);
        else if (strcmp(argv[i], "--grow-kb") == 0 && i + 1 < argc) grow_kb = atoi(argv[++i]);
    }

    for (int i = 0; i < CACHE_ENTRIES; i++) {
        g_cache[i] = malloc(CACHE_SIZE);
        if (!g_cache[i]) { fprintf(stderr, "leakyapp: out of memory\n"); return 1; }
        memset(g_cache[i], i, CACHE_SIZE);
    }
    void *region = VirtualAlloc(NULL, 4096, MEM_RESERVE | MEM_COMMIT, PAGE_READWRITE);
    void *task = CoTaskMemAlloc(512);
    BSTR name = SysAllocString(L"leakyapp");
    if (!region || !task || !name) { fprintf(stderr, "leakyapp: start-up allocation failed\n"); return 1; }

    HMODULE vend = LoadLibraryA("odbcvend.dll");
    if (!vend) { fprintf(stderr, "leakyapp: cannot load odbcvend.dll (error %lu)\n", GetLastError()); return 1; }
    fetch_row_fn VendFetchRow = (fetch_row_fn)(void *)GetProcAddress(vend, "VendFetchRow");
    if (!VendFetchRow) { fprintf(stderr, "leakyapp: VendFetchRow not exported\n"); return 1; }
    HMODULE uvend = LoadLibraryA("ucrtvend.dll");
    if (!uvend) { fprintf(stderr, "leakyapp: cannot load ucrtvend.dll (error %lu)\n", GetLastError()); return 1; }
    fetch_row_fn UcrtFetchRow = (fetch_row_fn)(void *)GetProcAddress(uvend, "VendFetchRow");
    if (!UcrtFetchRow) { fprintf(stderr, "leakyapp: ucrtvend VendFetchRow not exported\n"); return 1; }

    HANDLE heap = GetProcessHeap();
    int request = 0;
    long checksum = 0;
    for (int phase = 0; phase < 3; phase++) {
        for (int r = 0; r < phases[phase]; r++, request++) {
            char *temp = HeapAlloc(heap, 0, 4096);
            if (!temp) { fprintf(stderr, "leakyapp: HeapAlloc failed\n"); return 1; }
            for (int row = 0; row < ROWS; row++) {
                int v = VendFetchRow(request, row);
                int u = UcrtFetchRow(request, row);
                if (v < 0 || u != v) { fprintf(stderr, "leakyapp: VendFetchRow failed\n"); return 1; }
                checksum += v;
                temp[row] = (char)v;
            }
            if (grow_kb > 0) {       /* kept on purpose: drives --dump-every-mb */
                char *keep = malloc((size_t)grow_kb * 1024);
                if (!keep) { fprintf(stderr, "leakyapp: out of memory\n"); return 1; }
                memset(keep, 1, (size_t)grow_kb * 1024);
                g_kept = keep;
            }
            if (!HeapFree(heap, 0, temp)) { fprintf(stderr, "leakyapp: HeapFree failed\n"); return 1; }
        }
        printf("phase %d done pid=%lu requests=%d checksum=%ld\n", phase + 1,
               GetCurrentProcessId(), request, checksum);
        fflush(stdout);
        if (wait_dir) {
            if (!wait_for_go(wait_dir, phase + 1)) return 4;
        } else {
            Sleep((DWORD)sleep_ms);
        }
    }
    printf("leakyapp: done\n");
    return 0;
}
