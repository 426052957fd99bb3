/* CPU AdamW and the global gradient-norm helpers over flat float buffers. The sum of
 * squares is reduced in fixed 4096-element blocks combined in order, so clipping (and with
 * it training) gives the same bits whatever the thread count. */
#include "optim.h"

#include <math.h>

void adamw_update_cpu(float *p, const float *g, float *m, float *v, long n, AdamWParams hp, int t) {
    /* Bias corrections in double as torch computes them on the host, then folded into one
     * step size and one denominator scale so the per-element work stays in float. */
    const double bc1 = 1.0 - pow((double)hp.beta1, t);
    const double bc2 = 1.0 - pow((double)hp.beta2, t);
    const float step = (float)(hp.lr / bc1);
    const float sqrt_bc2 = (float)sqrt(bc2);
    const float decay = (float)(1.0 - (double)hp.lr * hp.weight_decay);
    const float b1 = hp.beta1, b2 = hp.beta2, eps = hp.eps;
#pragma omp parallel for schedule(static)
    for (long i = 0; i < n; i++) {
        float gi = g[i];
        float mi = b1 * m[i] + (1.0f - b1) * gi;
        float vi = b2 * v[i] + (1.0f - b2) * gi * gi;
        m[i] = mi;
        v[i] = vi;
        float pi = p[i] * decay; /* torch.optim.AdamW decays before the Adam step */
        p[i] = pi - step * (mi / (sqrtf(vi) / sqrt_bc2 + eps));
    }
}

enum { SUMSQ_BLOCK = 4096, SUMSQ_GROUP = 256 };

double sumsq_cpu(const float *g, long n) {
    double total = 0.0;
    double part[SUMSQ_GROUP];
    long nblocks = (n + SUMSQ_BLOCK - 1) / SUMSQ_BLOCK;
    /* Blocks are processed a group at a time so the partial sums fit on the stack. */
    for (long b0 = 0; b0 < nblocks; b0 += SUMSQ_GROUP) {
        int nb = (int)(nblocks - b0 < SUMSQ_GROUP ? nblocks - b0 : SUMSQ_GROUP);
#pragma omp parallel for schedule(static)
        for (int b = 0; b < nb; b++) {
            long lo = (b0 + b) * SUMSQ_BLOCK;
            long hi = lo + SUMSQ_BLOCK < n ? lo + SUMSQ_BLOCK : n;
            double s = 0.0;
            for (long i = lo; i < hi; i++) s += (double)g[i] * g[i];
            part[b] = s;
        }
        for (int b = 0; b < nb; b++) total += part[b];
    }
    return total;
}

void scale_cpu(float *x, long n, float s) {
#pragma omp parallel for schedule(static)
    for (long i = 0; i < n; i++) x[i] *= s;
}
