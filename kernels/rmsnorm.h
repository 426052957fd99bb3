/* RMSNorm as in Llama/Qwen2: y = x / sqrt(mean(x^2) + eps) * w, computed in fp32. */
#pragma once

/* y (n, d), rstd (n) saved for the backward, x (n, d), w (d). */
void rmsnorm_forward_cpu(float *y, float *rstd, const float *x, const float *w, int n, int d,
                         float eps);
/* Accumulates: dx (n, d) += dL/dx, dw (d) += dL/dw. */
void rmsnorm_backward_cpu(float *dx, float *dw, const float *dy, const float *x, const float *w,
                          const float *rstd, int n, int d);
