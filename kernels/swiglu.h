/* SwiGLU gate: h = silu(g) * u, elementwise, silu(x) = x / (1 + exp(-x)). */
#pragma once

/* h, g, u: n elements each. */
void swiglu_forward_cpu(float *h, const float *g, const float *u, long n);
/* Accumulates dg += dh * u * silu'(g), du += dh * silu(g). */
void swiglu_backward_cpu(float *dg, float *du, const float *dh, const float *g, const float *u,
                         long n);
