// A tiny zlib wrapper: read a whole .gz file into memory (used for the CLIP BPE vocab).
// Swift calls rada_gunzip_file, copies the bytes out, then frees them with rada_gunzip_free.
#ifndef RADA_GZIP_H
#define RADA_GZIP_H
#include <stddef.h>

/// Result codes of rada_gunzip_file.
enum {
  RADA_GZIP_OK = 0,
  RADA_GZIP_OPEN_FAILED = -1,   // the file could not be opened (errno tells why)
  RADA_GZIP_READ_FAILED = -2,   // zlib reported a corrupt or truncated stream
  RADA_GZIP_NO_MEMORY = -3,     // malloc/realloc failed
};

/// Decompresses the gzip file at `path` into a malloc'd buffer (*out, *out_length bytes).
/// On failure *out is NULL and a negative RADA_GZIP_* code is returned.
int rada_gunzip_file(const char *path, unsigned char **out, size_t *out_length);

/// Frees a buffer returned by rada_gunzip_file.
void rada_gunzip_free(unsigned char *buffer);

#endif
