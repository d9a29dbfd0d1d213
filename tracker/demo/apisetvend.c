/*
 * apisetvend.c - a "third-party" DLL that imports its memory functions from
 * the API sets api-ms-win-core-heap-l1-1-0 and api-ms-win-core-memory-l1-1-0
 * (as most system DLLs and newer SDK builds do), not from kernel32.  Built
 * with import libraries made from the .def files beside it.
 * ApiSetWork keeps 3 VirtualAlloc regions of 70250 bytes (returned to the
 * caller) and makes and frees 10 HeapAlloc blocks of 7027 bytes.
 */
#include <windows.h>

BOOL WINAPI ApiSetEntry(HINSTANCE inst, DWORD reason, LPVOID reserved)
{
    (void)inst; (void)reason; (void)reserved;
    return TRUE;
}

__declspec(dllexport) int ApiSetWork(void **regions, int n)
{
    int kept = 0;
    for (int i = 0; i < n; i++) {
        regions[i] = VirtualAlloc(NULL, 70250, MEM_RESERVE | MEM_COMMIT, PAGE_READWRITE);
        if (regions[i]) kept++;
    }
    for (int i = 0; i < 10; i++) {
        void *p = HeapAlloc(GetProcessHeap(), 0, 7027);
        if (p) HeapFree(GetProcessHeap(), 0, p);
    }
    return kept;
}
