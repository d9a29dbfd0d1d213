/*
 * bench.c - allocation throughput: N malloc/free pairs of varying small sizes
 * per thread, on T threads (default 1).  Prints "allocs_per_sec=<n>" (pairs
 * per second, all threads together).  Run bare and under "ldtrack run" to see
 * the tracker's overhead; with T > 1 and a dump rule it is also a stress test
 * of the tracker's locking while dumps are written.
 * Built with -fno-builtin so clang does not elide the malloc/free pair.
 * With a third argument "mixed", each thread instead keeps a ring of 256
 * live blocks and, per step, replaces the oldest with one made by malloc,
 * calloc, malloc+realloc (grow) or HeapAlloc in turn, freeing it with the
 * matching function: a mixed workload, blocks freed long after they were made.
 */
#include <windows.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static long g_pairs;
static int g_mixed;

#define RING 256
static DWORD WINAPI mixed(LPVOID arg)
{
    volatile char *sink = arg;
    void *ring[RING] = { 0 };
    char kind[RING] = { 0 };
    HANDLE heap = GetProcessHeap();
    for (long i = 0; i < g_pairs; i++) {
        int s = (int)(i % RING);
        if (ring[s]) {
            if (kind[s] == 'H') HeapFree(heap, 0, ring[s]); else free(ring[s]);
        }
        size_t n = 16 + (size_t)((i * 7) % 200) * 8;
        char *p;
        switch (i % 4) {
        case 0: p = malloc(n); kind[s] = 'M'; break;
        case 1: p = calloc(1, n); kind[s] = 'M'; break;
        case 2: p = malloc(n / 2 + 1); if (p) { char *q = realloc(p, n); if (q) p = q; } kind[s] = 'M'; break;
        default: p = HeapAlloc(heap, 0, n); kind[s] = 'H'; break;
        }
        if (!p) return 1;
        p[0] = (char)i;
        *sink ^= p[0];
        ring[s] = p;
    }
    for (int s = 0; s < RING; s++)
        if (ring[s]) { if (kind[s] == 'H') HeapFree(heap, 0, ring[s]); else free(ring[s]); }
    return 0;
}

static DWORD WINAPI loop(LPVOID arg)
{
    volatile char *sink = arg;
    for (long i = 0; i < g_pairs; i++) {
        char *p = malloc(16 + (size_t)(i % 64) * 8);
        if (!p) return 1;
        p[0] = (char)i;
        *sink ^= p[0];
        free(p);
    }
    return 0;
}

int main(int argc, char **argv)
{
    static char sinks[64];
    HANDLE th[64];
    long threads = argc > 2 ? atol(argv[2]) : 1;
    LARGE_INTEGER f, a, b;
    g_pairs = argc > 1 ? atol(argv[1]) : 200000;
    g_mixed = argc > 3 && strcmp(argv[3], "mixed") == 0;
    if (g_pairs <= 0 || threads < 1 || threads > 64) return 1;
    if (!QueryPerformanceFrequency(&f) || !QueryPerformanceCounter(&a)) return 1;
    for (long t = 0; t < threads; t++) {
        th[t] = CreateThread(NULL, 0, g_mixed ? mixed : loop, &sinks[t], 0, NULL);
        if (!th[t]) { fprintf(stderr, "bench: CreateThread failed (%lu)\n", GetLastError()); return 1; }
    }
    for (long t = 0; t < threads; t++) {
        DWORD code = 1;
        if (WaitForSingleObject(th[t], INFINITE) != WAIT_OBJECT_0 || !GetExitCodeThread(th[t], &code) || code)
            return 1;
        CloseHandle(th[t]);
    }
    if (!QueryPerformanceCounter(&b)) return 1;
    double s = (double)(b.QuadPart - a.QuadPart) / (double)f.QuadPart;
    printf("pairs=%ld threads=%ld%s seconds=%.3f allocs_per_sec=%.0f\n", g_pairs * threads, threads,
           g_mixed ? " mixed" : "", s,
           g_pairs * threads / s);
    return 0;
}
