/* CPU reference for the token embedding: a row gather forward, and a scatter-add backward
 * that visits tokens in order so repeated ids always sum the same way. */
#include "embedding.h"

#include <omp.h>
#include <string.h>

/* Below this many elements a parallel region costs more than the copy it would split. */
#define EMBEDDING_PAR_MIN 32768L

void embedding_forward_cpu(float *y, const int *ids, const float *table, int n, int d) {
#pragma omp parallel for schedule(static) if ((long)n * d > EMBEDDING_PAR_MIN)
    for (int i = 0; i < n; i++)
        memcpy(y + (size_t)i * d, table + (size_t)ids[i] * d, (size_t)d * sizeof(float));
}

void embedding_backward_cpu(float *dtable, const float *dy, const int *ids, int n, int d) {
    /* Rows sharing an id would race if split by token, so each thread owns a slice of the
     * columns (whole cache lines) and walks every token in order: each element is summed in
     * token order whatever the thread count, which keeps the result bit-reproducible. */
#pragma omp parallel if ((long)n * d > EMBEDDING_PAR_MIN)
    {
        const int nt = omp_get_num_threads(), tid = omp_get_thread_num();
        const int nblk = (d + 15) / 16;
        int j0 = 16 * (int)((long)nblk * tid / nt), j1 = 16 * (int)((long)nblk * (tid + 1) / nt);
        if (j1 > d) j1 = d;
        for (int i = 0; i < n; i++) {
            float *restrict dst = dtable + (size_t)ids[i] * d;
            const float *restrict src = dy + (size_t)i * d;
            for (int j = j0; j < j1; j++) dst[j] += src[j];
        }
    }
}
