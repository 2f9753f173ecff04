// A fast 64-bit content digest for fingerprints (model weights, the rada binary, dataset listings): zlib's
// crc32 in the high half and adler32 in the low half, both optimised C even in a debug build. Detects changed
// content; it is not a cryptographic hash.
#ifndef RADA_DIGEST_H
#define RADA_DIGEST_H
#include <stddef.h>
#include <stdint.h>

/// Continues `previous` (0 to start) over `length` bytes at `data`.
uint64_t rada_digest64(uint64_t previous, const void *data, size_t length);

#endif
