// CPU feature detection with cpuid and xgetbv (the OS must enable the AVX/AVX-512 register state),
// and the affinity mask, which Swift's Glibc module does not expose (CPU_COUNT is a macro).
#define _GNU_SOURCE
#include "rada_support.h"
#include <sched.h>

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
static uint64_t xgetbv0(void) {
  uint32_t eax, edx;
  __asm__ volatile("xgetbv" : "=a"(eax), "=d"(edx) : "c"(0));
  return ((uint64_t)edx << 32) | eax;
}

uint32_t rada_cpu_features(void) {
  unsigned a, b, c, d;
  uint32_t f = 0;
  if (!__get_cpuid(1, &a, &b, &c, &d)) return 0;
  int osxsave = (c >> 27) & 1;
  if ((c >> 20) & 1) f |= RADA_CPU_SSE42;
  uint64_t xcr0 = osxsave ? xgetbv0() : 0;
  int ymmOK = (xcr0 & 0x6) == 0x6;
  int zmmOK = ymmOK && (xcr0 & 0xE0) == 0xE0;
  if (((c >> 28) & 1) && ymmOK) f |= RADA_CPU_AVX;
  if (((c >> 12) & 1) && ymmOK) f |= RADA_CPU_FMA;
  if (__get_cpuid_max(0, 0) >= 7) {
    __cpuid_count(7, 0, a, b, c, d);
    if (((b >> 5) & 1) && ymmOK) f |= RADA_CPU_AVX2;
    if (zmmOK) {
      if ((b >> 16) & 1) f |= RADA_CPU_AVX512F;
      if ((b >> 17) & 1) f |= RADA_CPU_AVX512DQ;
      if ((b >> 30) & 1) f |= RADA_CPU_AVX512BW;
      if ((b >> 31) & 1) f |= RADA_CPU_AVX512VL;
      unsigned a1, b1, c1, d1;
      __cpuid_count(7, 1, a1, b1, c1, d1);
      if ((a1 >> 5) & 1) f |= RADA_CPU_AVX512BF16;
    }
    if ((d >> 24) & 1) f |= RADA_CPU_AMX;
  }
  return f;
}

void rada_cpu_model(int *family, int *model, int *stepping) {
  unsigned a, b, c, d;
  *family = *model = *stepping = 0;
  if (!__get_cpuid(1, &a, &b, &c, &d)) return;
  int fam = (a >> 8) & 0xF, mod = (a >> 4) & 0xF;
  if (fam == 0xF) fam += (a >> 20) & 0xFF;
  if (fam == 0x6 || fam >= 0xF) mod |= ((a >> 16) & 0xF) << 4;
  *family = fam; *model = mod; *stepping = a & 0xF;
}
#else
uint32_t rada_cpu_features(void) { return 0; }
void rada_cpu_model(int *family, int *model, int *stepping) { *family = *model = *stepping = 0; }
#endif

int rada_affinity_cpu_count(void) {
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof(set), &set) != 0) return -1;
  return CPU_COUNT(&set);
}
