// A tiny zlib wrapper: read a whole .gz file into memory (see rada_gzip.h).
#include "rada_gzip.h"
#include <stdlib.h>
#include <zlib.h>

int rada_gunzip_file(const char *path, unsigned char **out, size_t *out_length) {
  *out = NULL;
  *out_length = 0;
  gzFile file = gzopen(path, "rb");
  if (file == NULL) return RADA_GZIP_OPEN_FAILED;
  size_t capacity = 1 << 20, length = 0;
  unsigned char *buffer = malloc(capacity);
  if (buffer == NULL) { gzclose(file); return RADA_GZIP_NO_MEMORY; }
  for (;;) {
    if (length == capacity) {
      unsigned char *grown = realloc(buffer, capacity * 2);
      if (grown == NULL) { free(buffer); gzclose(file); return RADA_GZIP_NO_MEMORY; }
      buffer = grown;
      capacity *= 2;
    }
    size_t want = capacity - length;
    if (want > (1u << 30)) want = 1u << 30;  // gzread takes an unsigned int count
    int got = gzread(file, buffer + length, (unsigned)want);
    if (got < 0) { free(buffer); gzclose(file); return RADA_GZIP_READ_FAILED; }
    if (got == 0) break;
    length += (size_t)got;
  }
  // gzclose reports a truncated stream (Z_BUF_ERROR) that gzread let through.
  if (gzclose(file) != Z_OK) { free(buffer); return RADA_GZIP_READ_FAILED; }
  *out = buffer;
  *out_length = length;
  return RADA_GZIP_OK;
}

void rada_gunzip_free(unsigned char *buffer) { free(buffer); }
