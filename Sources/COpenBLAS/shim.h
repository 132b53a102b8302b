// OpenBLAS (Debian libopenblas-dev): cblas_sgemm for the executor.
#include <cblas.h>
