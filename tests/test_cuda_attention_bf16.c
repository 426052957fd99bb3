/* The bf16 tensor-core flash attention (attention_bf16.h) against the fp32 CPU reference
 * (attention.h) run on the same bf16-rounded inputs, over shapes with GQA and odd lengths
 * (T = 1, 37, 130, 200, 257, 300: partial tiles, tiles straddling the diagonal), with every
 * backward tile shape (DENSERL_ATTN_BWD_TILES), and which head dims fit the GPU's shared
 * memory (in emulation, DENSERL_EMU_SMEM_KB plays an A100 or a 99 KB GPU). Outputs are
 * poisoned before each call, so anything the kernels never write shows up as NaN.
 * Tolerances: out, dq, dk, dv 2e-2 relative (bf16 outputs, and P and dS rounded to bf16
 * for the tensor-core products); lse 1e-3 (bf16 products are exact in fp32, so only the
 * fp32 summation order differs). With DENSERL_ATTN_BENCH set it also times the kernels at
 * B=4 T=2048 H=16 D=128 with Hkv 16 and 4. Gradients use grad_err (below). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "testutil.h"
#include "cudatest.h"
#include "bf16test.h"
#include "kernels/attention.h"
#include "kernels/attention_bf16.h"

static void check_shape(int B, int T, int H, int Hkv, int D) {
    const long nq = (long)B * T * H * D, nk = (long)B * T * Hkv * D, nl = (long)B * H * T;
    float *q = rand_host(nq, 2.0), *k = rand_host(nk, 2.0), *v = rand_host(nk, 1.0);
    float *dout = rand_host(nq, 1.0);
    uint16_t *qh = round_bf16(q, nq), *kh = round_bf16(k, nk), *vh = round_bf16(v, nk);
    uint16_t *doh = round_bf16(dout, nq);
    uint16_t *qd = dev_bf16(qh, nq), *kd = dev_bf16(kh, nk), *vd = dev_bf16(vh, nk);

    /* forward */
    float *out = malloc(sizeof(float) * nq), *lse = malloc(sizeof(float) * nl);
    attention_forward_cpu(out, lse, q, k, v, B, T, H, Hkv, D);
    uint16_t *outd = dev_poison_bf16(nq);
    float *lsed = DEV_POISON_F(nl);
    attention_forward_bf16_cuda(outd, lsed, qd, kd, vd, B, T, H, Hkv, D);
    float *out_g = host_bf16(outd, nq), *lse_g = HOST_F(lsed, nl);
    const double eo = rel_err(out_g, out, nq), el = rel_err(lse_g, lse, nl);
    check(eo < 2e-2, "forward out  B=%d T=%d H=%d Hkv=%d D=%d rel_err %.2e", B, T, H, Hkv, D, eo);
    check(el < 1e-3, "forward lse  B=%d T=%d H=%d Hkv=%d D=%d rel_err %.2e", B, T, H, Hkv, D, el);

    /* backward, both sides from the reference out rounded to bf16 and its lse */
    uint16_t *outh = round_bf16(out, nq);
    uint16_t *od = dev_bf16(outh, nq), *dod = dev_bf16(doh, nq);
    float *lsei = DEV_F(lse, nl);
    float *dq = calloc(nq, sizeof(float)), *dk = calloc(nk, sizeof(float));
    float *dv = calloc(nk, sizeof(float));
    attention_backward_cpu(dq, dk, dv, dout, q, k, v, out, lse, B, T, H, Hkv, D);
    uint16_t *dqd = dev_poison_bf16(nq), *dkd = dev_poison_bf16(nk), *dvd = dev_poison_bf16(nk);
    const size_t ws = attention_backward_bf16_workspace(B, T, H, Hkv, D);
    void *wsd = dev_poisoned(ws, 1);
    attention_backward_bf16_cuda(dqd, dkd, dvd, dod, qd, kd, vd, od, lsei, B, T, H, Hkv, D, wsd);
    float *dq_g = host_bf16(dqd, nq), *dk_g = host_bf16(dkd, nk), *dv_g = host_bf16(dvd, nk);
    const double eq = grad_err(dq_g, dq, nq), ek = grad_err(dk_g, dk, nk),
                 ev = grad_err(dv_g, dv, nk);
    check(eq < 2e-2, "backward dq  B=%d T=%d H=%d Hkv=%d D=%d rel_err %.2e", B, T, H, Hkv, D, eq);
    check(ek < 2e-2, "backward dk  B=%d T=%d H=%d Hkv=%d D=%d rel_err %.2e", B, T, H, Hkv, D, ek);
    check(ev < 2e-2, "backward dv  B=%d T=%d H=%d Hkv=%d D=%d rel_err %.2e", B, T, H, Hkv, D, ev);

    void *dev[] = {qd, kd, vd, outd, lsed, od, dod, lsei, dqd, dkd, dvd, wsd};
    for (size_t i = 0; i < sizeof dev / sizeof *dev; i++) dev_free(dev[i]);
    void *host[] = {q,     k,     v,    dout, qh, kh, vh,   doh,  out, lse,
                    out_g, lse_g, outh, dq,   dk, dv, dq_g, dk_g, dv_g};
    for (size_t i = 0; i < sizeof host / sizeof *host; i++) free(host[i]);
}

#ifdef DENSERL_CUDA
#include <cuda_runtime.h>

/* Milliseconds per call of the forward and of the backward at one shape (inputs random). */
static void bench_shape(int B, int T, int H, int Hkv, int D) {
    const long nq = (long)B * T * H * D, nk = (long)B * T * Hkv * D, nl = (long)B * H * T;
    uint16_t *bufs[8];
    const long sizes[8] = {nq, nk, nk, nq, nq, nq, nk, nk}; /* q k v out dout dq dk dv */
    for (int i = 0; i < 8; i++) {
        float *x = rand_host(sizes[i], 1.0);
        uint16_t *h = round_bf16(x, sizes[i]);
        bufs[i] = dev_bf16(h, sizes[i]);
        free(x);
        free(h);
    }
    float *lsed = DEV_POISON_F(nl);
    void *ws = dev_poisoned(attention_backward_bf16_workspace(B, T, H, Hkv, D), 1);
    cudaEvent_t e0, e1;
    cudaEventCreate(&e0);
    cudaEventCreate(&e1);
    const int reps = 20;
    float msf = 0, msb = 0;
    for (int pass = 0; pass < 2; pass++) { /* pass 0 warms up */
        cudaEventRecord(e0, 0);
        for (int r = 0; r < reps; r++)
            attention_forward_bf16_cuda(bufs[3], lsed, bufs[0], bufs[1], bufs[2], B, T, H, Hkv, D);
        cudaEventRecord(e1, 0);
        cudaEventSynchronize(e1);
        cudaEventElapsedTime(&msf, e0, e1);
        cudaEventRecord(e0, 0);
        for (int r = 0; r < reps; r++)
            attention_backward_bf16_cuda(bufs[5], bufs[6], bufs[7], bufs[4], bufs[0], bufs[1],
                                         bufs[2], bufs[3], lsed, B, T, H, Hkv, D, ws);
        cudaEventRecord(e1, 0);
        cudaEventSynchronize(e1);
        cudaEventElapsedTime(&msb, e0, e1);
    }
    msf /= reps;
    msb /= reps;
    /* causal: half of the 4 B H T^2 D forward flops, 2.5x that backward */
    const double ff = 2.0 * B * H * (double)T * T * D;
    printf("bench B=%d T=%d H=%d Hkv=%d D=%d: fwd %.3f ms (%.0f TFLOP/s), bwd %.3f ms "
           "(%.0f TFLOP/s), fwd+bwd %.3f ms\n",
           B, T, H, Hkv, D, msf, ff / msf * 1e-9, msb, 2.5 * ff / msb * 1e-9, msf + msb);
    for (int i = 0; i < 8; i++) dev_free(bufs[i]);
    dev_free(lsed);
    dev_free(ws);
}
#endif

/* An attribute of the current GPU: its multiprocessors, its most shared memory per block
 * in bytes (0 where built without CUDA). */
#ifdef DENSERL_CUDA
static int gpu_attr(enum cudaDeviceAttr a) {
    int v = 0, dev = 0;
    cudaGetDevice(&dev);
    cudaDeviceGetAttribute(&v, a, dev);
    return v;
}
#else
#define gpu_attr(a) 0
#endif
#define sm_count()   gpu_attr(cudaDevAttrMultiProcessorCount)
#define smem_optin() gpu_attr(cudaDevAttrMaxSharedMemoryPerBlockOptin)

int main(void) {
    CUDA_TEST_BEGIN();
    rng_seed(20240611);
    /* what fits this GPU's shared memory per block: the backward's one-buffer tiles need
     * 90624 bytes at D = 64 and 139776 at D = 128 (more than the forward's 55296 and 104448);
     * an H100 and an A100 hold both, a GPU with about 100 KB only D = 64 */
    const int optin = smem_optin();
    const int fit64 = attention_bf16_fits(64), fit128 = attention_bf16_fits(128);
    check(fit64 == (optin >= 90624) && fit128 == (optin >= 139776),
          "attention_bf16_fits with %d bytes of shared memory per block: D=64 %d, D=128 %d", optin,
          fit64, fit128);
    /* every backward tile shape: the default's choice by the grid (below), 64 query rows x 128
     * keys (one buffer of the query-side tiles where two do not fit), 128 x 64, and 64 x 128
     * with one buffer */
    const char *tiles[4] = {NULL, "q64k128", "q128k64", "q64k128s"};
    for (int t = 0; t < 4; t++) {
        if (tiles[t]) setenv("DENSERL_ATTN_BWD_TILES", tiles[t], 1);
        printf("backward tiles %s\n", tiles[t] ? tiles[t] : "default");
        const int shapes[7][5] = {{1, 64, 2, 2, 64}, {2, 200, 4, 2, 128}, {1, 37, 2, 1, 64},
                                  {1, 1, 1, 1, 128}, {2, 130, 4, 4, 64},  {1, 257, 8, 2, 128},
                                  {1, 300, 2, 1, 64}};
        for (int k = 0; k < 7; k++) {
            const int *x = shapes[k];
            if (x[4] == 128 ? fit128 : fit64)
                check_shape(x[0], x[1], x[2], x[3], x[4]);
            else
                printf("SKIP D=%d: does not fit this GPU's shared memory\n", x[4]);
        }
    }
    unsetenv("DENSERL_ATTN_BWD_TILES");
    /* the default's choice: the 64-key tiles where the 128-key grid, B Hkv ceil(T / 128)
     * CTAs, has fewer CTAs than the GPU has SMs, else the 128-key tiles; each as the shape
     * set by DENSERL_ATTN_BWD_TILES resolves on this GPU's shared memory */
    if (fit64) {
        const int sms = sm_count(), b_big = sms / (2 * 3) + 1; /* Hkv 2, T 300: 3 key tiles */
        const char *got[2], *want[2];
        for (int k = 0; k < 2; k++) {
            const int B = k ? b_big : 1;
            got[k] = attention_bf16_bwd_tiles(B, 300, 2, 64);
            setenv("DENSERL_ATTN_BWD_TILES", k ? "q64k128" : "q128k64", 1);
            want[k] = attention_bf16_bwd_tiles(B, 300, 2, 64);
            unsetenv("DENSERL_ATTN_BWD_TILES");
        }
        check(got[0] && got[1] && want[0] && want[1] && !strcmp(got[0], want[0]) &&
                  !strcmp(got[1], want[1]),
              "backward tiles by the grid (%d SMs): 6 CTAs of 128 keys take %s (want %s), %d "
              "take %s (want %s)",
              sms, got[0] ? got[0] : "none", want[0] ? want[0] : "none", b_big * 6,
              got[1] ? got[1] : "none", want[1] ? want[1] : "none");
    }
#ifdef DENSERL_CUDA
    if (getenv("DENSERL_ATTN_BENCH")) {
        bench_shape(4, 2048, 16, 16, 128);
        bench_shape(4, 2048, 16, 4, 128);
    }
#endif
    return test_summary();
}
