/* Causal grouped-query attention through cuDNN's fused scaled-dot-product attention (cuDNN 9,
 * graph backend API), forward and backward: an alternative to attention_bf16.h with the same
 * semantics and layouts (scale 1/sqrt(D), query head h reads key/value head h / (H / Hkv), lse
 * the natural-log log-sum-exp of the scaled scores), bf16 tensors held as uint16_t bit patterns.
 * Every pointer is device memory, 16-byte aligned; D must be 64 or 128; any T >= 1. Graphs are
 * built once per shape and cached; the workspace is a device buffer owned by this module,
 * grown to the largest shape seen. Built against cuDNN when CMake finds it (DENSERL_CUDNN);
 * otherwise attention_cudnn_available() is 0 and the other calls abort with a message. */
#pragma once
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* 1 when cuDNN 9 loaded, the GPU is sm_80 or newer and cuDNN built a plan for a probe graph
 * in both directions; else 0, with the reason printed once on stderr. */
int attention_cudnn_available(void);
/* cuDNN's version as cudnnGetVersion() reports it (91900 for 9.19.0); 0 without cuDNN. */
long attention_cudnn_version(void);

/* q (B, T, H, D), k, v (B, T, Hkv, D) bf16; writes out (B, T, H, D) bf16 and lse (B, H, T)
 * fp32. */
void attention_forward_cudnn(uint16_t *out, float *lse, const uint16_t *q, const uint16_t *k,
                             const uint16_t *v, int B, int T, int H, int Hkv, int D);
/* WRITES (does not accumulate) dq (B, T, H, D), dk, dv (B, T, Hkv, D) bf16 from dout, q, k,
 * v, out (bf16, shapes as in the forward) and lse (B, H, T) fp32. */
void attention_backward_cudnn(uint16_t *dq, uint16_t *dk, uint16_t *dv, const uint16_t *dout,
                              const uint16_t *q, const uint16_t *k, const uint16_t *v,
                              const uint16_t *out, const float *lse, int B, int T, int H, int Hkv,
                              int D);

/* About the plan of one shape and direction (backward != 0), building it if not cached:
 * bytes of workspace a call uses (cuDNN's plus the graph's own fp32 buffers); whether two runs
 * give the same bits (1 for the forward unless the engine carries cuDNN's non-deterministic
 * note; 0 for the backward, whose fp32 dQ accumulation has no fixed order); and a one-line
 * description (version, engine, heuristics mode, workspace) into buf. */
size_t attention_cudnn_workspace(int B, int T, int H, int Hkv, int D, int backward);
int attention_cudnn_deterministic(int B, int T, int H, int Hkv, int D, int backward);
void attention_cudnn_describe(int B, int T, int H, int Hkv, int D, int backward, char *buf,
                              size_t n);

#ifdef __cplusplus
}
#endif
