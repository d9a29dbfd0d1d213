/*
 * odbcvend.c - a stand-in "third-party" driver DLL for the leak demo.
 *
 * VendFetchRow() builds one row in a buffer from VendRowBuffer() (malloc, then
 * realloc to the final size, so both CRT hooks are exercised) and releases it,
 * except for rows whose index is 3 mod 4: those are "forgotten" - the bug the
 * demo is about.  With 8 rows a request, rows 3 and 7 leak:
 *   size(row) = 128 + 16 * row  ->  176 + 240 = 416 bytes, 2 blocks a request.
 */
#include <windows.h>
#include <stdlib.h>
#include <string.h>

/*
 * Built with -nostartfiles and this entry point: no mingw CRT start-up code
 * runs in this DLL.  That code registers an atexit table (a 256-byte malloc
 * inside msvcrt) while the DLL loads - before ldtrack re-patches the new
 * module's imports - so the block would be recorded with msvcrt.dll innermost
 * and odbcvend.dll next: an analyzer that skips runtime modules would add
 * 1 block / 256 bytes to odbcvend.dll and one that does not would not.
 * Without it, every odbcvend.dll-attributed block is a leaked row, whatever
 * the analyzer's runtime-module list.
 */
BOOL WINAPI VendDllEntry(HINSTANCE inst, DWORD reason, LPVOID reserved)
{
    (void)inst; (void)reason; (void)reserved;
    return TRUE;
}

#define VEND_API __declspec(dllexport)

VEND_API __attribute__((noinline)) void *VendRowBuffer(size_t size)
{
    void *p = malloc(64);
    if (!p) return NULL;
    void *q = realloc(p, size);
    if (!q) { free(p); return NULL; }
    memset(q, 0xAB, size);
    return q;
}

VEND_API size_t VendRowSize(int row) { return 128 + 16 * (size_t)row; }

/* Returns a checksum of the row so the work is not optimized away. */
VEND_API __attribute__((noinline)) int VendFetchRow(int request, int row)
{
    size_t size = VendRowSize(row);
    unsigned char *buf = VendRowBuffer(size);
    if (!buf) return -1;
    buf[0] = (unsigned char)request;
    buf[size - 1] = (unsigned char)row;
    int sum = buf[0] + buf[size - 1];
    if (row % 4 == 3)
        return sum;          /* BUG (deliberate): row buffer never freed */
    free(buf);
    return sum;
}
