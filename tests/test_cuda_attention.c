/* The CUDA attention kernels against their CPU twins on random inputs: forward (out and
 * lse, outputs poisoned), backward (dq, dk, dv accumulated onto random initial values, and
 * bit-identical on a second run), decode against a KV cache with per-row positions (one or
 * many key splits, bit-identical on a second run; fp32 and bf16 caches, the latter against
 * the CPU on the same bf16 values), the cache stores and slot moves, and decode_prep (rotary and
 * stores in one kernel) against the separate kernels bit for bit. Shapes cover odd T, T = 1, GQA
 * and every lane-group layout of D. */
#include "testutil.h"
#include "cudatest.h"
#include "bf16test.h"
#include "kernels/attention.h"
#include "kernels/kernels_cuda.h"

#include <string.h>

/* fp32 forward: the GPU sums each score over D in another order than the CPU and rescales
 * its running sums per key tile, a few ulps per value. */
#define TOL_FWD 1e-5
/* Backward: dS = P (dP - Delta) subtracts two sums of similar size, which magnifies their
 * rounding differences relative to dS; 2e-5 leaves room for that cancellation. */
#define TOL_BWD 2e-5

typedef struct {
    int B, T, H, Hkv, D;
} Shape;

static void test_forward_backward(Shape s, double amp) {
    const long nq = (long)s.B * s.T * s.H * s.D, nk = (long)s.B * s.T * s.Hkv * s.D;
    const long nl = (long)s.B * s.H * s.T;
    float *q = rand_host(nq, amp), *k = rand_host(nk, amp), *v = rand_host(nk, 1.0);
    float *dout = rand_host(nq, 1.0);
    float *dq0 = rand_host(nq, 0.5), *dk0 = rand_host(nk, 0.5), *dv0 = rand_host(nk, 0.5);
    float *out = malloc(sizeof(float) * nq), *lse = malloc(sizeof(float) * nl);
    attention_forward_cpu(out, lse, q, k, v, s.B, s.T, s.H, s.Hkv, s.D);

    float *d_q = DEV_F(q, nq), *d_k = DEV_F(k, nk), *d_v = DEV_F(v, nk);
    float *d_out = DEV_POISON_F(nq), *d_lse = DEV_POISON_F(nl);
    attention_forward_cuda(d_out, d_lse, d_q, d_k, d_v, s.B, s.T, s.H, s.Hkv, s.D);
    float *g_out = HOST_F(d_out, nq), *g_lse = HOST_F(d_lse, nl);
    double e_out = rel_err(g_out, out, nq), e_lse = rel_err(g_lse, lse, nl);
    check(e_out < TOL_FWD, "forward out B=%d T=%d H=%d Hkv=%d D=%d amp=%g: rel_err %.2e", s.B, s.T,
          s.H, s.Hkv, s.D, amp, e_out);
    check(e_lse < TOL_FWD, "forward lse B=%d T=%d H=%d Hkv=%d D=%d amp=%g: rel_err %.2e", s.B, s.T,
          s.H, s.Hkv, s.D, amp, e_lse);

    /* Both backwards read the CPU's out and lse, so only the backward is compared. */
    float *dq = malloc(sizeof(float) * nq), *dk = malloc(sizeof(float) * nk),
          *dv = malloc(sizeof(float) * nk);
    memcpy(dq, dq0, sizeof(float) * nq);
    memcpy(dk, dk0, sizeof(float) * nk);
    memcpy(dv, dv0, sizeof(float) * nk);
    attention_backward_cpu(dq, dk, dv, dout, q, k, v, out, lse, s.B, s.T, s.H, s.Hkv, s.D);
    float *d_dout = DEV_F(dout, nq), *d_o = DEV_F(out, nq), *d_l = DEV_F(lse, nl);
    float *g[2][3];
    for (int run = 0; run < 2; run++) {
        float *d_dq = DEV_F(dq0, nq), *d_dk = DEV_F(dk0, nk), *d_dv = DEV_F(dv0, nk);
        attention_backward_cuda(d_dq, d_dk, d_dv, d_dout, d_q, d_k, d_v, d_o, d_l, s.B, s.T, s.H,
                                s.Hkv, s.D);
        g[run][0] = HOST_F(d_dq, nq);
        g[run][1] = HOST_F(d_dk, nk);
        g[run][2] = HOST_F(d_dv, nk);
        dev_free(d_dq);
        dev_free(d_dk);
        dev_free(d_dv);
    }
    const char *names[3] = {"dq", "dk", "dv"};
    const float *want[3] = {dq, dk, dv};
    const long n[3] = {nq, nk, nk};
    for (int i = 0; i < 3; i++) {
        double e = rel_err(g[0][i], want[i], n[i]);
        check(e < TOL_BWD, "backward %s B=%d T=%d H=%d Hkv=%d D=%d amp=%g: rel_err %.2e", names[i],
              s.B, s.T, s.H, s.Hkv, s.D, amp, e);
    }
    int same = 1;
    for (int i = 0; i < 3; i++) same &= memcmp(g[0][i], g[1][i], sizeof(float) * n[i]) == 0;
    check(same, "backward B=%d T=%d H=%d Hkv=%d D=%d: two runs bit-identical", s.B, s.T, s.H, s.Hkv,
          s.D);

    for (int r = 0; r < 2; r++)
        for (int i = 0; i < 3; i++) free(g[r][i]);
    float *hf[] = {q, k, v, dout, dq0, dk0, dv0, out, lse, dq, dk, dv, g_out, g_lse};
    for (size_t i = 0; i < sizeof hf / sizeof *hf; i++) free(hf[i]);
    float *df[] = {d_q, d_k, d_v, d_out, d_lse, d_dout, d_o, d_l};
    for (size_t i = 0; i < sizeof df / sizeof *df; i++) dev_free(df[i]);
}

/* How test_decode picks pos[b]: spread over [0, Tc - 1] (the first row at 0, the last at
 * Tc - 1, the rest random), all Tc - 1 (a full cache), or all 0 (one key). */
enum { POS_SPREAD, POS_FULL, POS_ZERO };

/* Positions 0 .. pos[b] of each row of the host caches (elements of es bytes, row of them
 * per position) into the device ones; the rest stays as it was (poisoned). */
static void upload_cache(void *dk, void *dv, const void *hk, const void *hv, size_t es,
                         const int *pos, int B, int Tc, long row) {
    for (int b = 0; b < B; b++) {
        const size_t o = es * (size_t)b * Tc * row, bytes = es * (pos[b] + 1) * row;
        be_to_device(BACKEND_CUDA, (char *)dk + o, (const char *)hk + o, bytes);
        be_to_device(BACKEND_CUDA, (char *)dv + o, (const char *)hv + o, bytes);
    }
}

/* Decode with pos[b] chosen by mode, the cache past pos[b] left poisoned on the device to
 * prove it is never read; a second run must give the same bits (the split combine merges
 * in a fixed order). */
static void test_decode_pos(int B, int Tc, int H, int Hkv, int D, int mode) {
    const long nq = (long)B * H * D, nc = (long)B * Tc * Hkv * D, row = (long)Hkv * D;
    float *q = rand_host(nq, 2.0), *kc = rand_host(nc, 1.0), *vc = rand_host(nc, 1.0);
    int *pos = malloc(sizeof(int) * B);
    for (int b = 0; b < B; b++)
        pos[b] = mode == POS_FULL   ? Tc - 1
                 : mode == POS_ZERO ? 0
                 : b == 0           ? 0
                 : b == B - 1       ? Tc - 1
                                    : (int)(rng_u01() * Tc);
    float *out = malloc(sizeof(float) * nq);
    attention_decode_cpu(out, q, kc, vc, pos, B, Tc, H, Hkv, D);
    float *d_kc = DEV_POISON_F(nc), *d_vc = DEV_POISON_F(nc);
    upload_cache(d_kc, d_vc, kc, vc, sizeof(float), pos, B, Tc, row);
    float *d_q = DEV_F(q, nq), *d_out = DEV_POISON_F(nq);
    int *d_pos = DEV_I(pos, B);
    attention_decode_cuda(d_out, d_q, d_kc, d_vc, d_pos, B, Tc, H, Hkv, D);
    float *g = HOST_F(d_out, nq);
    double e = rel_err(g, out, nq);
    check(e < TOL_FWD, "decode B=%d Tc=%d H=%d Hkv=%d D=%d pos mode %d: rel_err %.2e", B, Tc, H,
          Hkv, D, mode, e);
    be_memset_byte(BACKEND_CUDA, d_out, 0xff, sizeof(float) * nq);
    attention_decode_cuda(d_out, d_q, d_kc, d_vc, d_pos, B, Tc, H, Hkv, D);
    float *g2 = HOST_F(d_out, nq);
    check(memcmp(g, g2, sizeof(float) * nq) == 0,
          "decode B=%d Tc=%d H=%d Hkv=%d D=%d pos mode %d: two runs bit-identical", B, Tc, H, Hkv,
          D, mode);
    /* a bf16 cache: the CPU on the same values, widened */
    uint16_t *kh = round_bf16(kc, nc), *vh = round_bf16(vc, nc);
    attention_decode_cpu(out, q, kc, vc, pos, B, Tc, H, Hkv, D);
    uint16_t *d_kh = dev_poison_bf16(nc), *d_vh = dev_poison_bf16(nc);
    upload_cache(d_kh, d_vh, kh, vh, sizeof(uint16_t), pos, B, Tc, row);
    be_memset_byte(BACKEND_CUDA, d_out, 0xff, sizeof(float) * nq);
    attention_decode_bf16cache_cuda(d_out, d_q, d_kh, d_vh, d_pos, B, Tc, H, Hkv, D);
    float *g3 = HOST_F(d_out, nq);
    e = rel_err(g3, out, nq);
    check(e < TOL_FWD, "decode, bf16 cache, B=%d Tc=%d H=%d Hkv=%d D=%d pos mode %d: rel_err %.2e",
          B, Tc, H, Hkv, D, mode, e);
    /* out in bf16: the fp32 out just checked, rounded to nearest even, bit for bit */
    uint16_t *d_ob = dev_poison_bf16(nq);
    attention_decode_bf16_cuda(d_ob, d_q, d_kh, d_vh, d_pos, B, Tc, H, Hkv, D);
    uint16_t *ob = host_copy_of(d_ob, (size_t)nq, sizeof(uint16_t)), *ob_want = round_bf16(g3, nq);
    check(
        memcmp(ob, ob_want, sizeof(uint16_t) * nq) == 0,
        "decode, bf16 cache and out, B=%d Tc=%d H=%d Hkv=%d D=%d pos mode %d: the fp32 out rounded",
        B, Tc, H, Hkv, D, mode);
    free(ob);
    free(ob_want);
    dev_free(d_ob);
    free(q);
    free(kc);
    free(vc);
    free(kh);
    free(vh);
    free(pos);
    free(out);
    free(g);
    free(g2);
    free(g3);
    dev_free(d_kc);
    dev_free(d_vc);
    dev_free(d_kh);
    dev_free(d_vh);
    dev_free(d_q);
    dev_free(d_out);
    dev_free(d_pos);
}

static void test_decode(int B, int Tc, int H, int Hkv, int D) {
    test_decode_pos(B, Tc, H, Hkv, D, POS_SPREAD);
}

static void test_store(int B, int Tc, int width) {
    const long nc = (long)B * Tc * width;
    float *cache = rand_host(nc, 1.0), *x = rand_host((long)B * width, 1.0);
    int *pos = malloc(sizeof(int) * B);
    for (int b = 0; b < B; b++) pos[b] = (int)(rng_u01() * Tc);
    float *d_cache = DEV_F(cache, nc), *d_x = DEV_F(x, (long)B * width);
    int *d_pos = DEV_I(pos, B);
    kv_cache_store_cpu(cache, x, pos, B, Tc, width);
    kv_cache_store_cuda(d_cache, d_x, d_pos, B, Tc, width);
    float *g = HOST_F(d_cache, nc);
    check(memcmp(g, cache, sizeof(float) * nc) == 0, "kv_cache_store B=%d Tc=%d width=%d: exact", B,
          Tc, width);
    /* bf16: x rounded to nearest even at each row's position, the rest untouched */
    float *c2 = rand_host(nc, 1.0);
    uint16_t *h = round_bf16(c2, nc), *d_h = dev_bf16(h, nc);
    kv_cache_store_bf16_cuda(d_h, d_x, d_pos, B, Tc, width);
    for (int b = 0; b < B; b++)
        for (int c = 0; c < width; c++)
            h[((size_t)b * Tc + pos[b]) * width + c] = f2bf(x[(size_t)b * width + c]);
    uint16_t *gh = host_copy_of(d_h, (size_t)nc, sizeof(uint16_t));
    check(memcmp(gh, h, sizeof(uint16_t) * nc) == 0,
          "kv_cache_store_bf16 B=%d Tc=%d width=%d: rounded to nearest even, exact", B, Tc, width);
    free(c2);
    free(h);
    free(gh);
    dev_free(d_h);
    free(cache);
    free(x);
    free(pos);
    free(g);
    dev_free(d_cache);
    dev_free(d_x);
    dev_free(d_pos);
}

/* kv_move_slots against the CPU's, byte for byte over both caches (moves from the live tail
 * into finished slots below it, as generation makes them, some of length 0). */
static void test_move_slots(int L, int B, int Tc, int width, int es) {
    const size_t nb = (size_t)L * B * Tc * width * es;
    unsigned char *kc = malloc(nb), *vc = malloc(nb);
    for (size_t i = 0; i < nb; i++) kc[i] = (unsigned char)(rng_u01() * 256), vc[i] = kc[i] ^ 0x5a;
    int moves[3 * 8], n = 0;
    for (int dst = 0, src = B - 1; dst < src && n < 8; dst += 2, src--, n++) {
        moves[3 * n] = dst;
        moves[3 * n + 1] = src;
        moves[3 * n + 2] = n == 1 ? 0 : (int)(rng_u01() * (Tc + 1));
    }
    void *dk = dev_copy_of(kc, nb, 1), *dv = dev_copy_of(vc, nb, 1);
    int *dm = DEV_I(moves, 3 * n);
    kv_move_slots_cuda(dk, dv, dm, n, L, B, Tc, width, es);
    kv_move_slots_cpu(kc, vc, moves, n, L, B, Tc, width, es);
    unsigned char *gk = host_copy_of(dk, nb, 1), *gv = host_copy_of(dv, nb, 1);
    check(!memcmp(gk, kc, nb) && !memcmp(gv, vc, nb),
          "kv_move_slots L=%d B=%d Tc=%d width=%d es=%d, %d moves: same bytes as the CPU's", L, B,
          Tc, width, es, n);
    dev_free(dk), dev_free(dv), dev_free(dm);
    free(kc), free(vc), free(gk), free(gv);
}

/* decode_prep (rotary on q and k, k and v into the caches, one kernel) bit for bit against
 * the separate rotary and store kernels, over fp32 and bf16 caches, reading q, k and v from
 * one packed (q | k | v) row per sequence and from three tensors (q rotated in place), and
 * against the CPU's decode_prep_cpu (the rotation's roundings as the CPU's, so a few ulps
 * where its compiler fuses a multiply-add). */
static void test_decode_prep(int B, int Tc, int H, int Hkv, int D) {
    const int qd = H * D, kd = Hkv * D, S = qd + 2 * kd;
    const long nq = (long)B * qd, nk = (long)B * kd, nc = (long)B * Tc * kd, nt = (long)Tc * D / 2;
    float *qkv = rand_host((long)B * S, 1.0), *cs = rand_host(nt, 1.0), *sn = rand_host(nt, 1.0);
    float *cache = rand_host(nc, 1.0);
    float *q = malloc(sizeof(float) * nq), *k = malloc(sizeof(float) * nk);
    float *v = malloc(sizeof(float) * nk);
    for (int b = 0; b < B; b++) {
        memcpy(q + (size_t)b * qd, qkv + (size_t)b * S, sizeof(float) * qd);
        memcpy(k + (size_t)b * kd, qkv + (size_t)b * S + qd, sizeof(float) * kd);
        memcpy(v + (size_t)b * kd, qkv + (size_t)b * S + qd + kd, sizeof(float) * kd);
    }
    int *pos = malloc(sizeof(int) * B);
    for (int b = 0; b < B; b++) pos[b] = (int)(rng_u01() * Tc);
    int *d_pos = DEV_I(pos, B);
    float *d_cs = DEV_F(cs, nt), *d_sn = DEV_F(sn, nt), *d_qkv = DEV_F(qkv, (long)B * S);
    /* the reference: rotary in place on separate tensors, then the stores */
    float *rq = DEV_F(q, nq), *rk = DEV_F(k, nk), *rv = DEV_F(v, nk);
    float *rkc = DEV_F(cache, nc), *rvc = DEV_F(cache, nc);
    rope_forward_cuda(rq, d_pos, d_cs, d_sn, B, H, D);
    rope_forward_cuda(rk, d_pos, d_cs, d_sn, B, Hkv, D);
    kv_cache_store_cuda(rkc, rk, d_pos, B, Tc, kd);
    kv_cache_store_cuda(rvc, rv, d_pos, B, Tc, kd);
    float *want[3] = {HOST_F(rq, nq), HOST_F(rkc, nc), HOST_F(rvc, nc)};
    /* packed rows into a separate qo, then three tensors with q in place */
    float *qo = DEV_POISON_F(nq), *kc = DEV_F(cache, nc), *vc = DEV_F(cache, nc);
    decode_prep_cuda(qo, d_qkv, d_qkv + qd, d_qkv + qd + kd, S, S, kc, vc, d_pos, d_cs, d_sn, B, Tc,
                     H, Hkv, D);
    float *got[3] = {HOST_F(qo, nq), HOST_F(kc, nc), HOST_F(vc, nc)};
    float *inp = HOST_F(d_qkv, (long)B * S);
    int same = !memcmp(inp, qkv, sizeof(float) * B * S); /* the packed rows are only read */
    for (int i = 0; i < 3; i++) same &= !memcmp(got[i], want[i], sizeof(float) * (i ? nc : nq));
    float *sq = DEV_F(q, nq), *sk = DEV_F(k, nk), *skc = DEV_F(cache, nc), *svc = DEV_F(cache, nc);
    decode_prep_cuda(sq, sq, sk, rv, qd, kd, skc, svc, d_pos, d_cs, d_sn, B, Tc, H, Hkv, D);
    float *got2[3] = {HOST_F(sq, nq), HOST_F(skc, nc), HOST_F(svc, nc)};
    for (int i = 0; i < 3; i++) same &= !memcmp(got2[i], want[i], sizeof(float) * (i ? nc : nq));
    /* the CPU, packed */
    float *cq = malloc(sizeof(float) * nq), *ckc = malloc(sizeof(float) * nc);
    float *cvc = malloc(sizeof(float) * nc);
    memcpy(ckc, cache, sizeof(float) * nc), memcpy(cvc, cache, sizeof(float) * nc);
    decode_prep_cpu(cq, qkv, qkv + qd, qkv + qd + kd, S, S, ckc, cvc, pos, cs, sn, B, Tc, H, Hkv,
                    D);
    double e = rel_err(got[0], cq, nq), e1 = rel_err(got[1], ckc, nc),
           e2 = rel_err(got[2], cvc, nc);
    e = e1 > e ? e1 : e, e = e2 > e ? e2 : e;
    check(same && e < 1e-6,
          "decode_prep B=%d Tc=%d H=%d Hkv=%d D=%d: bits of rotary + stores, packed and apart, "
          "rel_err %.1e vs CPU",
          B, Tc, H, Hkv, D, e);
    /* bf16 caches, packed rows: the stores of the reference's rotated k and v */
    uint16_t *hc = round_bf16(cache, nc);
    uint16_t *bk_ref = dev_bf16(hc, nc), *bv_ref = dev_bf16(hc, nc);
    uint16_t *bk = dev_bf16(hc, nc), *bv = dev_bf16(hc, nc);
    kv_cache_store_bf16_cuda(bk_ref, rk, d_pos, B, Tc, kd);
    kv_cache_store_bf16_cuda(bv_ref, rv, d_pos, B, Tc, kd);
    float *qo2 = DEV_POISON_F(nq);
    decode_prep_bf16cache_cuda(qo2, d_qkv, d_qkv + qd, d_qkv + qd + kd, S, S, bk, bv, d_pos, d_cs,
                               d_sn, B, Tc, H, Hkv, D);
    uint16_t *x[4] = {host_copy_of(bk_ref, (size_t)nc, 2), host_copy_of(bk, (size_t)nc, 2),
                      host_copy_of(bv_ref, (size_t)nc, 2), host_copy_of(bv, (size_t)nc, 2)};
    float *gq2 = HOST_F(qo2, nq);
    same = !memcmp(x[0], x[1], 2 * (size_t)nc) && !memcmp(x[2], x[3], 2 * (size_t)nc) &&
           !memcmp(gq2, want[0], sizeof(float) * nq);
    check(same, "decode_prep over bf16 caches B=%d Tc=%d H=%d Hkv=%d D=%d: bits of rotary + stores",
          B, Tc, H, Hkv, D);
    void *dev[] = {d_pos, d_cs, d_sn, d_qkv, rq,  rk,     rv,     rkc, rvc, qo, kc,
                   vc,    sq,   sk,   skc,   svc, bk_ref, bv_ref, bk,  bv,  qo2};
    for (size_t i = 0; i < sizeof dev / sizeof *dev; i++) dev_free(dev[i]);
    void *host[] = {qkv,    cs,     sn,      cache,   q,       k,       v,       pos,     inp,
                    cq,     ckc,    cvc,     hc,      gq2,     want[0], want[1], want[2], got[0],
                    got[1], got[2], got2[0], got2[1], got2[2], x[0],    x[1],    x[2],    x[3]};
    for (size_t i = 0; i < sizeof host / sizeof *host; i++) free(host[i]);
}

/* Positions 0 .. pos[b] - 1 of each row of the host caches into the device ones; the new
 * position pos[b] and past it stay poisoned. */
static void upload_before(void *dk, void *dv, const void *hk, const void *hv, size_t es,
                          const int *pos, int B, int Tc, long row) {
    int *before = malloc(sizeof(int) * B);
    for (int b = 0; b < B; b++) before[b] = pos[b] - 1;
    upload_cache(dk, dv, hk, hv, es, before, B, Tc, row);
    free(before);
}

/* attention_decode_prep (decode_prep's work inside the decode) against decode_prep followed
 * by the decode, over fp32 and bf16 caches: the bits of out and of both whole caches (the
 * new position written, nothing else), from packed q|k|v rows with pos spread as in
 * test_decode; the position being written starts poisoned, so reading it before its store
 * shows. Against the CPU's attention_decode_prep_cpu within TOL_FWD. */
static void test_decode_fused(int B, int Tc, int H, int Hkv, int D) {
    const int qd = H * D, kd = Hkv * D, S = qd + 2 * kd;
    const long nq = (long)B * qd, nc = (long)B * Tc * kd, nt = (long)Tc * D / 2;
    float *qkv = rand_host((long)B * S, 1.0), *cs = rand_host(nt, 1.0), *sn = rand_host(nt, 1.0);
    float *kc = rand_host(nc, 1.0), *vc = rand_host(nc, 1.0);
    int *pos = malloc(sizeof(int) * B);
    for (int b = 0; b < B; b++) pos[b] = b == 0 ? 0 : b == B - 1 ? Tc - 1 : (int)(rng_u01() * Tc);
    int *d_pos = DEV_I(pos, B);
    float *d_cs = DEV_F(cs, nt), *d_sn = DEV_F(sn, nt), *d_qkv = DEV_F(qkv, (long)B * S);
    const float *dq = d_qkv, *dk = d_qkv + qd, *dv = d_qkv + qd + kd;
    float *ref_k = DEV_POISON_F(nc), *ref_v = DEV_POISON_F(nc), *fk = DEV_POISON_F(nc),
          *fv = DEV_POISON_F(nc), *qo = DEV_POISON_F(nq), *qo2 = DEV_POISON_F(nq);
    float *ref_o = DEV_POISON_F(nq), *fo = DEV_POISON_F(nq);
    upload_before(ref_k, ref_v, kc, vc, sizeof(float), pos, B, Tc, kd);
    upload_before(fk, fv, kc, vc, sizeof(float), pos, B, Tc, kd);
    decode_prep_cuda(qo, dq, dk, dv, S, S, ref_k, ref_v, d_pos, d_cs, d_sn, B, Tc, H, Hkv, D);
    attention_decode_cuda(ref_o, qo, ref_k, ref_v, d_pos, B, Tc, H, Hkv, D);
    attention_decode_prep_cuda(fo, qo2, dq, dk, dv, S, S, fk, fv, d_pos, d_cs, d_sn, B, Tc, H, Hkv,
                               D);
    float *h[6] = {HOST_F(ref_o, nq), HOST_F(fo, nq),    HOST_F(ref_k, nc),
                   HOST_F(fk, nc),    HOST_F(ref_v, nc), HOST_F(fv, nc)};
    int same = !memcmp(h[0], h[1], sizeof(float) * nq) && !memcmp(h[2], h[3], sizeof(float) * nc) &&
               !memcmp(h[4], h[5], sizeof(float) * nc);
    /* the CPU over the same caches (poison past pos[b] never read) */
    float *cq = malloc(sizeof(float) * nq), *co = malloc(sizeof(float) * nq);
    attention_decode_prep_cpu(co, cq, qkv, qkv + qd, qkv + qd + kd, S, S, kc, vc, pos, cs, sn, B,
                              Tc, H, Hkv, D);
    const double e = rel_err(h[1], co, nq);
    check(same && e < TOL_FWD,
          "decode with prep B=%d Tc=%d H=%d Hkv=%d D=%d: bits of out and caches as prep + decode, "
          "rel_err %.2e vs CPU",
          B, Tc, H, Hkv, D, e);
    /* bf16 caches, bf16 out */
    uint16_t *kh = round_bf16(kc, nc), *vh = round_bf16(vc, nc);
    uint16_t *bk = dev_poison_bf16(nc), *bv = dev_poison_bf16(nc), *fbk = dev_poison_bf16(nc),
             *fbv = dev_poison_bf16(nc), *bo = dev_poison_bf16(nq), *fbo = dev_poison_bf16(nq);
    upload_before(bk, bv, kh, vh, 2, pos, B, Tc, kd);
    upload_before(fbk, fbv, kh, vh, 2, pos, B, Tc, kd);
    decode_prep_bf16cache_cuda(qo, dq, dk, dv, S, S, bk, bv, d_pos, d_cs, d_sn, B, Tc, H, Hkv, D);
    attention_decode_bf16_cuda(bo, qo, bk, bv, d_pos, B, Tc, H, Hkv, D);
    attention_decode_prep_bf16_cuda(fbo, qo2, dq, dk, dv, S, S, fbk, fbv, d_pos, d_cs, d_sn, B, Tc,
                                    H, Hkv, D);
    uint16_t *x[6] = {host_copy_of(bo, (size_t)nq, 2), host_copy_of(fbo, (size_t)nq, 2),
                      host_copy_of(bk, (size_t)nc, 2), host_copy_of(fbk, (size_t)nc, 2),
                      host_copy_of(bv, (size_t)nc, 2), host_copy_of(fbv, (size_t)nc, 2)};
    same = !memcmp(x[0], x[1], 2 * (size_t)nq) && !memcmp(x[2], x[3], 2 * (size_t)nc) &&
           !memcmp(x[4], x[5], 2 * (size_t)nc);
    check(same,
          "decode with prep, bf16 cache and out, B=%d Tc=%d H=%d Hkv=%d D=%d: bits as prep + "
          "decode",
          B, Tc, H, Hkv, D);
    void *dev[] = {d_pos, d_cs,  d_sn, d_qkv, ref_k, ref_v, fk,  fv, qo,
                   qo2,   ref_o, fo,   bk,    bv,    fbk,   fbv, bo, fbo};
    for (size_t i = 0; i < sizeof dev / sizeof *dev; i++) dev_free(dev[i]);
    void *host[] = {qkv, cs, sn, kc, vc, pos, cq, co, kh, vh};
    for (size_t i = 0; i < sizeof host / sizeof *host; i++) free(host[i]);
    for (int i = 0; i < 6; i++) free(h[i]), free(x[i]);
}

/* Every decode shape, on whichever decode kernel DENSERL_ATTN_DECODE selects. */
static void test_decodes(void) {
    test_decode(2, 37, 4, 2, 64);
    test_decode(1, 1, 2, 1, 32);
    test_decode(3, 200, 6, 2, 128);
    test_decode(2, 129, 8, 8, 96);
    test_decode(3, 64, 4, 1, 80);
    test_decode(2, 50, 4, 2, 256);
    test_decode(4, 4096, 8, 2, 128);
    /* one sequence over a long cache: many key splits */
    test_decode_pos(1, 4096, 32, 8, 128, POS_FULL);
    /* the benchmarked generation shape (group of 7), full and ragged rows */
    test_decode_pos(64, 2048, 14, 2, 64, POS_FULL);
    test_decode(64, 2048, 14, 2, 64);
    /* many rows: one split per block, several tiles */
    test_decode(40, 500, 8, 4, 64);
    /* every row at position 0, with and without splits */
    test_decode_pos(3, 100, 4, 2, 64, POS_ZERO);
    test_decode_pos(1, 3000, 8, 2, 128, POS_ZERO);
    /* no grouping (H == Hkv) */
    test_decode(3, 300, 4, 4, 64);
    test_decode_pos(1, 1500, 8, 8, 256, POS_FULL);
    /* groups wider than one block's query chunk (12 = 8 + 4, 16 = 8 + 8) */
    test_decode(2, 700, 12, 1, 64);
    test_decode_pos(1, 999, 16, 1, 32, POS_FULL);
    /* odd widths and cache lengths */
    test_decode(5, 333, 6, 3, 20);
    test_decode(2, 1000, 4, 1, 4);
    test_decode(3, 777, 10, 2, 196);
    /* decode_prep inside the decode (B, Tc, H, Hkv, D): splits, groups past a query chunk,
     * odd widths, one position */
    static const int fused[][5] = {
        {2, 37, 4, 2, 64},   {64, 2048, 14, 2, 64}, {2, 4096, 32, 8, 128}, {3, 300, 4, 4, 64},
        {2, 700, 12, 1, 64}, {5, 333, 6, 3, 20},    {3, 777, 10, 2, 196},  {1, 1, 2, 1, 32}};
    for (size_t i = 0; i < sizeof fused / sizeof *fused; i++)
        test_decode_fused(fused[i][0], fused[i][1], fused[i][2], fused[i][3], fused[i][4]);
}

int main(void) {
    CUDA_TEST_BEGIN();
    rng_seed(20240611);
    const Shape shapes[] = {
        {2, 37, 4, 2, 64}, {1, 1, 2, 1, 32},   {2, 200, 6, 2, 128}, {1, 129, 8, 8, 96},
        {3, 64, 4, 1, 80}, {1, 70, 4, 2, 256}, {2, 33, 2, 1, 160},  {1, 300, 2, 2, 4},
    };
    for (size_t i = 0; i < sizeof shapes / sizeof *shapes; i++)
        test_forward_backward(shapes[i], 1.0);
    /* sharper softmax rows */
    test_forward_backward((Shape){2, 97, 4, 2, 64}, 3.0);
    /* the warp decode (the default), then the block-tile one it replaced */
    test_decodes();
    setenv("DENSERL_ATTN_DECODE", "tiles", 1);
    test_decodes();
    unsetenv("DENSERL_ATTN_DECODE");
    test_store(3, 17, 40);
    test_store(1, 1, 4);
    test_move_slots(3, 9, 20, 128, 4); /* 16-byte words */
    test_move_slots(2, 5, 7, 6, 2);    /* a row of 12 bytes: one byte at a time */
    test_move_slots(2, 16, 33, 40, 2); /* 80-byte rows: 16-byte words */
    /* decode_prep: the 0.5B model's heads, odd D / 2, no grouping */
    test_decode_prep(5, 40, 14, 2, 64);
    test_decode_prep(3, 9, 4, 2, 6);
    test_decode_prep(2, 33, 4, 4, 128);
    return test_summary();
}
