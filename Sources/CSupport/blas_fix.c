// Debian's OpenBLAS 0.3.21 (DYNAMIC_ARCH) does not know newer Intel models and silently falls back to the
// 'Prescott' SSE3 kernels, about 5x slower than its SkylakeX kernels on an AVX-512 CPU. The core type is
// read only once, in libopenblas' own constructor, so setting OPENBLAS_CORETYPE from main() is too late.
// This constructor runs after that (shared-library constructors run first), and when the chosen core is a
// generic fallback while the CPU (and OS) support AVX-512 or AVX2, it sets OPENBLAS_CORETYPE and
// re-initialises OpenBLAS in-process. A user-set OPENBLAS_CORETYPE is never touched; RADA_BLAS_FIX=0
// turns the fix-up off. The Swift side verifies one sgemm against a naive loop (BLASRuntime.swift).
//
// The same constructor shortens how long an idle OpenBLAS worker spins before it sleeps. OpenBLAS's default
// (2^28 cycles, ~0.1 s) keeps its worker calling sched_yield after every threaded product, all through rada's own
// threaded phases (attention items, layer norms, the RAda head per sample) and the data loader's decoding:
// 1.0-1.5 s of system time in a 4.6 s head benchmark, CPU the loader and other jobs on the node could use
// (wall time there was within the machine's noise). 2^12 cycles (~1.5 us) keeps the worker hot between
// back-to-back products and lets it sleep otherwise. A user-set OPENBLAS_THREAD_TIMEOUT wins; RADA_BLAS_FIX=0
// turns this off too.
#define _GNU_SOURCE
#include "rada_support.h"
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <stdio.h>

extern char *openblas_get_corename(void);
extern void gotoblas_dynamic_init(void);
extern void gotoblas_dynamic_quit(void);
extern void openblas_read_env(void);
extern unsigned int openblas_thread_timeout(void);
extern int blas_thread_init(void);
extern int blas_thread_shutdown_(void);
extern char **environ;

static rada_blas_fix_report report;
static int ran = 0;

const rada_blas_fix_report *rada_blas_fix_result(void) { return &report; }

static int name_is(const char *core, const char *const *names) {
  for (; *names; ++names)
    if (strcasecmp(core, *names) == 0) return 1;
  return 0;
}

/// Idle spin of OpenBLAS workers, as OPENBLAS_THREAD_TIMEOUT's exponent: 2^exponent cycles before sleeping.
enum { rada_thread_timeout_exponent = 12 };

static void fix_thread_timeout(void) {
  const char *user = getenv("OPENBLAS_THREAD_TIMEOUT");
  if (user && *user) {
    report.threadTimeoutUserSet = 1;
    report.threadTimeout = (int)openblas_thread_timeout();
    return;
  }
  char value[8];
  snprintf(value, sizeof(value), "%d", (int)rada_thread_timeout_exponent);
  char **saved = environ;  // see below: setenv may move environ
  setenv("OPENBLAS_THREAD_TIMEOUT", value, 1);
  openblas_read_env();
  // The pool reads the timeout when it starts its threads: restart it (no product is running yet).
  blas_thread_shutdown_();
  blas_thread_init();
  unsetenv("OPENBLAS_THREAD_TIMEOUT");  // child processes decide for themselves
  environ = saved;
  report.threadTimeout = (int)openblas_thread_timeout();
}

static void fix_core(void);

void rada_blas_fix_run(void) {
  if (ran) return;
  ran = 1;
  fix_core();
  if (!report.disabled) fix_thread_timeout();
}

static void fix_core(void) {
  const char *core = openblas_get_corename();
  snprintf(report.original, sizeof(report.original), "%s", core ? core : "unknown");
  report.forced[0] = 0;
  if (getenv("OPENBLAS_CORETYPE")) { report.userSet = 1; return; }
  const char *flag = getenv("RADA_BLAS_FIX");
  if (flag && strcmp(flag, "0") == 0) { report.disabled = 1; return; }

  uint32_t f = rada_cpu_features();
  const uint32_t avx512 = RADA_CPU_AVX512F | RADA_CPU_AVX512BW | RADA_CPU_AVX512VL | RADA_CPU_AVX512DQ;
  static const char *const good512[] = {"SkylakeX", "Cooperlake", "SapphireRapids", NULL};
  static const char *const good256[] = {"Haswell", "Zen", "SkylakeX", "Cooperlake", "SapphireRapids", NULL};
  const char *want = NULL;
  if ((f & avx512) == avx512) {
    if (!name_is(report.original, good512)) want = "SkylakeX";
  } else if ((f & (RADA_CPU_AVX2 | RADA_CPU_FMA)) == (RADA_CPU_AVX2 | RADA_CPU_FMA)) {
    if (!name_is(report.original, good256)) want = "Haswell";
  }
  if (!want) return;

  // setenv may move `environ`; the Swift runtime of a static-stdlib build finds argv by walking back from
  // environ, so restore the original pointer afterwards (the variable was only needed by the re-init).
  char **saved = environ;
  setenv("OPENBLAS_CORETYPE", want, 1);
  gotoblas_dynamic_quit();
  gotoblas_dynamic_init();
  environ = saved;
  snprintf(report.forced, sizeof(report.forced), "%s", want);
}

__attribute__((constructor)) static void rada_blas_fix_constructor(void) { rada_blas_fix_run(); }
