/* CPU reference for rotary position embedding (rotate-half convention): the cos/sin
 * tables, the in-place rotation, and its transpose for the backward. */
#include "rope.h"

#include <math.h>
#include <stddef.h>

#define ROPE_PAR_MIN 16384L

void rope_tables_cpu(float *cos_t, float *sin_t, const float *inv_freq, int max_pos, int half) {
    /* The angle grows to max_pos * inv_freq[0] radians; in float that would lose the low bits
     * at long positions, so it is formed and reduced in double and rounded once. */
#pragma omp parallel for schedule(static) if ((long)max_pos * half > ROPE_PAR_MIN)
    for (int p = 0; p < max_pos; p++)
        for (int j = 0; j < half; j++) {
            const double a = (double)p * (double)inv_freq[j];
            cos_t[(size_t)p * half + j] = (float)cos(a);
            sin_t[(size_t)p * half + j] = (float)sin(a);
        }
}

/* Rotates every head of every row by +angle (sign = 1) or -angle (sign = -1). */
static void rope_rotate(float *x, const int *pos, const float *cos_t, const float *sin_t, int n,
                        int h, int D, float sign) {
    const int half = D / 2;
#pragma omp parallel for schedule(static) if ((long)n * h * D > ROPE_PAR_MIN)
    for (int i = 0; i < n; i++) {
        const float *restrict c = cos_t + (size_t)pos[i] * half;
        const float *restrict s = sin_t + (size_t)pos[i] * half;
        for (int hh = 0; hh < h; hh++) {
            float *restrict x1 = x + ((size_t)i * h + hh) * D;
            float *restrict x2 = x1 + half;
            for (int j = 0; j < half; j++) {
                const float a = x1[j], b = x2[j], sj = sign * s[j];
                x1[j] = a * c[j] - b * sj;
                x2[j] = b * c[j] + a * sj;
            }
        }
    }
}

void rope_forward_cpu(float *x, const int *pos, const float *cos_t, const float *sin_t, int n,
                      int h, int D) {
    rope_rotate(x, pos, cos_t, sin_t, n, h, D, 1.0f);
}

void rope_backward_cpu(float *dx, const int *pos, const float *cos_t, const float *sin_t, int n,
                       int h, int D) {
    /* The rotation is orthogonal, so its transpose is the rotation by -angle. */
    rope_rotate(dx, pos, cos_t, sin_t, n, h, D, -1.0f);
}
