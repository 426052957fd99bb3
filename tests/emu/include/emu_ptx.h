/* The PTX instructions behind kernels/attention_bf16_cuda.cu's helpers, as the CPU emulation
 * carries them out: cp.async as a copy that lands as late as the PTX ISA allows, when the
 * issuing thread waits for its group (so that a read before the wait sees what was there
 * before, NaN bytes in fresh shared memory), and ldmatrix and mma.sync as warp operations
 * done once for the whole warp from every lane's posted registers, with the fragment
 * layouts of the PTX ISA (m8n8 b16 matrices for ldmatrix, m16n8k16 row.col bf16 with fp32
 * accumulation for mma). Included by cuda_runtime.h. */
#pragma once

/* cp.async (the source read now; zeros when !valid), cp.async.commit_group and
 * cp.async.wait_group n (every copy of this thread's committed groups but the newest n
 * lands); a thread's copies still pending when it exits land then (tests/emu/emu_runtime.cpp) */
void emu_cp_async(void *dst, const void *src, int bytes, bool valid);
void emu_cp_async_commit(void);
void emu_cp_async_wait(int n);

static inline float emu_bf16_lo(uint32_t u) {
    return __uint_as_float(u << 16);
}
static inline float emu_bf16_hi(uint32_t u) {
    return __uint_as_float(u & 0xffff0000u);
}

struct emu_ldsm_args {
    const uint16_t *row; /* this lane's row of 8 b16 */
    bool trans;
};

/* counts the wavefronts of one ldmatrix.x4 from its 32 row addresses (DENSERL_EMU_BANKS) */
void emu_count_ldsm(const void *const rows[32]);

/* lanes 8i..8i+7 address the rows of matrix i; lane l receives, for each matrix, row l/4's
 * elements 2(l%4) and 2(l%4)+1, or with trans column l/4's */
static void emu_ldsm_run(const void *const send[32], void *const recv[32], unsigned lanes) {
    if (lanes != 0xffffffffu) {
        fprintf(stderr, "fatal: CUDA emulation: ldmatrix.x4 needs the full warp\n");
        abort();
    }
    const void *rows[32];
    for (int l = 0; l < 32; l++) rows[l] = ((const emu_ldsm_args *)send[l])->row;
    emu_count_ldsm(rows);
    for (int l = 0; l < 32; l++) {
        const bool trans = ((const emu_ldsm_args *)send[l])->trans;
        uint32_t *r = (uint32_t *)recv[l];
        for (int m = 0; m < 4; m++) {
            uint16_t e[2];
            for (int h = 0; h < 2; h++) {
                const int c = 2 * (l % 4) + h;
                e[h] = trans ? ((const emu_ldsm_args *)send[8 * m + c])->row[l / 4]
                             : ((const emu_ldsm_args *)send[8 * m + l / 4])->row[c];
            }
            r[m] = (uint32_t)e[0] | (uint32_t)e[1] << 16;
        }
    }
}

static inline void emu_ldmatrix_x4(uint32_t r[4], const void *p, bool trans) {
    if ((uintptr_t)p % 16) { /* each row address: 16 bytes, aligned to 16 (the PTX ISA) */
        fprintf(stderr, "fatal: CUDA emulation: ldmatrix row address %p not 16-byte aligned\n", p);
        abort();
    }
    emu_ldsm_args a = {(const uint16_t *)p, trans};
    uint32_t out[4];
    emu_warp_collective(0xffffffffu, emu_ldsm_run, &a, out);
    for (int i = 0; i < 4; i++) r[i] = out[i];
}

struct emu_mma_args {
    uint32_t a[4], b[2];
    float c[4];
};

/* D = A B + C for A 16x16 (row), B 16x8 (col), C and D 16x8, from the lanes' fragments:
 * lane l holds A(g, 2t..2t+1), A(g+8, ..), A(g, 2t+8..), A(g+8, 2t+8..), B(2t..2t+1, g),
 * B(2t+8.., g), C(g, 2t..2t+1), C(g+8, ..) with g = l/4, t = l%4 */
static void emu_mma_run(const void *const send[32], void *const recv[32], unsigned lanes) {
    if (lanes != 0xffffffffu) {
        fprintf(stderr, "fatal: CUDA emulation: mma.sync needs the full warp\n");
        abort();
    }
    float A[16][16], B[16][8];
    for (int l = 0; l < 32; l++) {
        const emu_mma_args *x = (const emu_mma_args *)send[l];
        const int g = l / 4, t = l % 4;
        for (int i = 0; i < 4; i++) {
            const int row = g + (i & 1) * 8, col = 2 * t + (i >> 1) * 8;
            A[row][col] = emu_bf16_lo(x->a[i]);
            A[row][col + 1] = emu_bf16_hi(x->a[i]);
        }
        for (int i = 0; i < 2; i++) {
            B[2 * t + 8 * i][g] = emu_bf16_lo(x->b[i]);
            B[2 * t + 8 * i + 1][g] = emu_bf16_hi(x->b[i]);
        }
    }
    for (int l = 0; l < 32; l++) {
        const emu_mma_args *x = (const emu_mma_args *)send[l];
        float *d = (float *)recv[l];
        const int g = l / 4, t = l % 4;
        for (int i = 0; i < 4; i++) {
            const int row = g + (i >> 1) * 8, col = 2 * t + (i & 1);
            float acc = 0.f;
            for (int k = 0; k < 16; k++) acc += A[row][k] * B[k][col];
            d[i] = acc + x->c[i];
        }
    }
}

static inline void emu_mma_m16n8k16_bf16(float c[4], const uint32_t a[4], uint32_t b0,
                                         uint32_t b1) {
    emu_mma_args x = {{a[0], a[1], a[2], a[3]}, {b0, b1}, {c[0], c[1], c[2], c[3]}};
    float d[4];
    emu_warp_collective(0xffffffffu, emu_mma_run, &x, d);
    for (int i = 0; i < 4; i++) c[i] = d[i];
}
