// rada_digest64: crc32 (high 32 bits) and adler32 (low 32 bits) from zlib, fed alternately in 1 MiB chunks so the
// second pass reads from cache (the result is the same as two whole passes: both are streaming sums).
#include "rada_digest.h"
#include <zlib.h>

uint64_t rada_digest64(uint64_t previous, const void *data, size_t length) {
  uLong crc = (uLong)(previous >> 32);
  uLong adler = previous == 0 ? adler32(0L, Z_NULL, 0) : (uLong)(previous & 0xFFFFFFFFu);
  const unsigned char *bytes = data;
  while (length > 0) {
    uInt chunk = length > (1u << 20) ? (1u << 20) : (uInt)length;
    crc = crc32(crc, bytes, chunk);
    adler = adler32(adler, bytes, chunk);
    bytes += chunk;
    length -= chunk;
  }
  return ((uint64_t)crc << 32) | (uint64_t)(adler & 0xFFFFFFFFu);
}
