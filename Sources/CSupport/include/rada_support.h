// Small C helpers Swift cannot express: CPU feature detection (cpuid/xgetbv), the CPU affinity mask,
// and the OpenBLAS kernel fix-up that runs before main (see blas_fix.c).
#ifndef RADA_SUPPORT_H
#define RADA_SUPPORT_H
#include <stdint.h>

/// Bit set of CPU features that matter for our kernels, as the OS allows them (xgetbv checked).
enum {
  RADA_CPU_SSE42 = 1 << 0,
  RADA_CPU_AVX = 1 << 1,
  RADA_CPU_AVX2 = 1 << 2,
  RADA_CPU_FMA = 1 << 3,
  RADA_CPU_AVX512F = 1 << 4,
  RADA_CPU_AVX512BW = 1 << 5,
  RADA_CPU_AVX512VL = 1 << 6,
  RADA_CPU_AVX512DQ = 1 << 7,
  RADA_CPU_AVX512BF16 = 1 << 8,
  RADA_CPU_AMX = 1 << 9,
};
uint32_t rada_cpu_features(void);
/// CPU family/model/stepping from cpuid leaf 1 (display values), or 0 on non-x86.
void rada_cpu_model(int *family, int *model, int *stepping);

/// Number of CPUs in this process's affinity mask (what mpirun's binding leaves us), or -1.
int rada_affinity_cpu_count(void);

/// What the start-up fix-up did. `original` is the core OpenBLAS picked by itself; `forced` is the
/// OPENBLAS_CORETYPE we re-initialised it with, or "" when nothing was changed.
typedef struct {
  char original[32];
  char forced[32];
  int userSet;   // 1 when OPENBLAS_CORETYPE was already in the environment (respected, never changed)
  int disabled;  // 1 when RADA_BLAS_FIX=0 turned the fix-up off
  int threadTimeout;         // OpenBLAS idle-spin exponent in effect (2^n cycles before a worker sleeps); 0: default
  int threadTimeoutUserSet;  // 1 when OPENBLAS_THREAD_TIMEOUT was already in the environment (respected)
} rada_blas_fix_report;
const rada_blas_fix_report *rada_blas_fix_result(void);
/// Runs the fix-up now (idempotent; also runs automatically as a constructor).
void rada_blas_fix_run(void);

#endif
