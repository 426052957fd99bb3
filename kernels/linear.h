/* Dense layer y = x W^T + b on CBLAS (W stored (out, in) as in PyTorch). */
#pragma once

/* y (n, out) = x (n, in) @ w^T (out, in) + b (out); b may be NULL. Overwrites y. */
void linear_forward_cpu(float *y, const float *x, const float *w, const float *b, int n, int in,
                        int out);
/* Accumulates: dx (n, in) += dy @ w; dw (out, in) += dy^T @ x; db (out) += sum_rows dy.
 * Any of dx, dw, db may be NULL to skip it. */
void linear_backward_cpu(float *dx, float *dw, float *db, const float *dy, const float *x,
                         const float *w, int n, int in, int out);
