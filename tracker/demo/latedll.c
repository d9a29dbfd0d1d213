/*
 * latedll.c - a DLL loaded at run time whose DllMain allocates: 3 HeapAlloc
 * blocks of 7035 bytes made while the loader runs it, kept, and returned by
 * LateBlocks() so the test program can print their addresses.
 */
#include <windows.h>

static void *g_blocks[3];

BOOL WINAPI LateEntry(HINSTANCE inst, DWORD reason, LPVOID reserved)
{
    (void)inst; (void)reserved;
    if (reason == DLL_PROCESS_ATTACH)
        for (int i = 0; i < 3; i++) g_blocks[i] = HeapAlloc(GetProcessHeap(), 0, 7035);
    return TRUE;
}

__declspec(dllexport) void **LateBlocks(void) { return g_blocks; }
