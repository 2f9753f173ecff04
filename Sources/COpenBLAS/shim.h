// OpenBLAS's CBLAS interface plus the few extension functions rada uses
// (core name, thread count). Debian installs cblas.h for the selected OpenBLAS flavour.
#ifndef RADA_COPENBLAS_SHIM_H
#define RADA_COPENBLAS_SHIM_H
#include <cblas.h>
#endif
