/* CPU reference for the SwiGLU gate h = silu(g) * u and its backward. The sigmoid is built
 * from exp(-|g|) only, which cannot overflow, using a polynomial exp that the compiler
 * vectorises (libm's expf stays scalar without -ffast-math). */
#include "swiglu.h"

#include <math.h>
#include <stdint.h>
#include <string.h>
#include "fastexp.h"

#define SWIGLU_PAR_MIN 32768L

/* a where g < 0 (sign bit set), b elsewhere, as bit operations; see fast_exp_neg for why. */
static inline float swiglu_select_neg(float g, float a, float b) {
    int32_t gb, ab, bb;
    memcpy(&gb, &g, sizeof gb);
    memcpy(&ab, &a, sizeof ab);
    memcpy(&bb, &b, sizeof bb);
    const int32_t m = gb >> 31; /* arithmetic shift: all ones for negative g */
    const int32_t rb = (ab & m) | (bb & ~m);
    float r;
    memcpy(&r, &rb, sizeof r);
    return r;
}

void swiglu_forward_cpu(float *h, const float *g, const float *u, long n) {
#pragma omp parallel for simd schedule(static) if (n > SWIGLU_PAR_MIN)
    for (long i = 0; i < n; i++) {
        const float gi = g[i];
        const float e = fast_exp_neg(fabsf(gi));
        /* sigmoid(g) is 1/(1+e) for g >= 0 and e/(1+e) below. */
        const float sig = swiglu_select_neg(gi, e, 1.0f) / (1.0f + e);
        h[i] = gi * sig * u[i];
    }
}

void swiglu_backward_cpu(float *dg, float *du, const float *dh, const float *g, const float *u,
                         long n) {
#pragma omp parallel for simd schedule(static) if (n > SWIGLU_PAR_MIN)
    for (long i = 0; i < n; i++) {
        const float gi = g[i];
        const float e = fast_exp_neg(fabsf(gi));
        const float inv = 1.0f / (1.0f + e);
        /* 1 - sigmoid(g) is taken as e/(1+e) or 1/(1+e), not by subtraction, so it keeps its
         * relative accuracy for large positive g. */
        const float sig = swiglu_select_neg(gi, e, 1.0f) * inv;
        const float sigc = swiglu_select_neg(gi, 1.0f, e) * inv;
        const float dhi = dh[i];
        dg[i] += dhi * u[i] * sig * (1.0f + gi * sigc);
        du[i] += dhi * (gi * sig);
    }
}
