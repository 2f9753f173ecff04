// Writing 8-bit PNG files with libpng's simplified API (for `rada synth` and test data).
#ifndef RADA_PNG_WRITE_H
#define RADA_PNG_WRITE_H
#include <stdint.h>
/// Writes width x height pixels of `channels` (1 gray, 3 RGB, 4 RGBA) 8-bit samples, rows top to bottom.
/// Returns 0 on success; otherwise copies libpng's message into `message` (size `capacity`).
int rada_png_write(const char *path, const uint8_t *pixels, int width, int height, int channels,
                   char *message, int capacity);
#endif
