/* Causal grouped-query flash attention in bf16 on tensor cores (CUDA only): the same
 * semantics as attention.h (scale 1/sqrt(D), query head h reads key/value head
 * h / (H / Hkv), lse the natural-log log-sum-exp of the scaled scores), with bf16 tensors
 * stored as uint16_t bit patterns so that C code can hold and pass them. Every pointer is
 * device memory. D must be 64 or 128 (anything else aborts with a message); any T >= 1. */
#pragma once
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* q (B, T, H, D), k, v (B, T, Hkv, D) bf16; writes out (B, T, H, D) bf16 and lse (B, H, T)
 * fp32. */
void attention_forward_bf16_cuda(uint16_t *out, float *lse, const uint16_t *q, const uint16_t *k,
                                 const uint16_t *v, int B, int T, int H, int Hkv, int D);
/* 1 when the kernels for head dim D (64 or 128) fit the current GPU's shared memory per
 * block (an H100's and an A100's do for both; GPUs with about 100 KB per block only for
 * D = 64), else 0: the calls below would then stop the program. */
int attention_bf16_fits(int D);
/* The backward's tile shape for a call of B sequences of T with Hkv kv heads of D:
 * "q64k128", "q64k128s" (one buffer) or "q128k64" (attention_bf16_cuda.cu), NULL if none
 * fits; DENSERL_ATTN_BWD_TILES decides where set. */
const char *attention_bf16_bwd_tiles(int B, int T, int Hkv, int D);
/* Bytes of device workspace attention_backward_bf16_cuda needs for this shape. */
size_t attention_backward_bf16_workspace(int B, int T, int H, int Hkv, int D);
/* WRITES (does not accumulate) dq (B, T, H, D), dk, dv (B, T, Hkv, D) bf16 from dout, q, k,
 * v, out (bf16, shapes as in the forward) and lse (B, H, T) fp32; workspace holds at least
 * attention_backward_bf16_workspace(...) bytes of device memory, 16-byte aligned. */
void attention_backward_bf16_cuda(uint16_t *dq, uint16_t *dk, uint16_t *dv, const uint16_t *dout,
                                  const uint16_t *q, const uint16_t *k, const uint16_t *v,
                                  const uint16_t *out, const float *lse, int B, int T, int H,
                                  int Hkv, int D, void *workspace);

#ifdef __cplusplus
}
#endif
