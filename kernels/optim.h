/* AdamW with decoupled weight decay, and global gradient-norm helpers, over flat buffers. */
#pragma once

typedef struct {
    float lr, beta1, beta2, eps, weight_decay;
} AdamWParams;

/* One update at step t (1-based, for bias correction) over n parameters, in the order of
 * torch.optim.AdamW: p *= 1 - lr wd; m = b1 m + (1-b1) g; v = b2 v + (1-b2) g^2;
 * p -= lr mhat / (sqrt(vhat) + eps), with mhat = m / (1-b1^t), vhat = v / (1-b2^t). */
void adamw_update_cpu(float *p, const float *g, float *m, float *v, long n, AdamWParams hp, int t);
/* Sum of squares of g (n) accumulated in double. */
double sumsq_cpu(const float *g, long n);
/* x (n) *= s. */
void scale_cpu(float *x, long n, float s);
