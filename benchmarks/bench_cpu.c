/* CPU training throughput: forward + backward of a Llama-shaped model on random tokens,
 * in tokens per second. The shape flags match benchmarks/peer_torch_cpu.py so both run
 * the same work. Usage: bench_cpu [--vocab V --hidden D --layers L --heads H --kv-heads K
 * --intermediate F --batch B --seq T --iters N --threads N] */
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "../engine/model.h"
#include "../kernels/philox.h"
#include "../runtime/log.h"

void openblas_set_num_threads(int n);

int main(int argc, char **argv) {
    int vocab = 8192, hidden = 256, layers = 8, heads = 8, kv = 4, ffn = 688, B = 8, T = 256;
    int iters = 5, threads = 0;
    for (int i = 1; i + 1 < argc; i += 2) {
        int v = atoi(argv[i + 1]);
        const char *a = argv[i];
        if (!strcmp(a, "--vocab"))
            vocab = v;
        else if (!strcmp(a, "--hidden"))
            hidden = v;
        else if (!strcmp(a, "--layers"))
            layers = v;
        else if (!strcmp(a, "--heads"))
            heads = v;
        else if (!strcmp(a, "--kv-heads"))
            kv = v;
        else if (!strcmp(a, "--intermediate"))
            ffn = v;
        else if (!strcmp(a, "--batch"))
            B = v;
        else if (!strcmp(a, "--seq"))
            T = v;
        else if (!strcmp(a, "--iters"))
            iters = v;
        else if (!strcmp(a, "--threads"))
            threads = v;
        else {
            fprintf(stderr, "error: bench_cpu: unknown flag '%s'\n", a);
            return 2;
        }
    }
    if (threads > 0) {
        omp_set_num_threads(threads);
        openblas_set_num_threads(threads);
    }
    ModelConfig c = {0};
    snprintf(c.model_type, sizeof c.model_type, "llama");
    c.vocab = vocab;
    c.d_model = hidden;
    c.n_layers = layers;
    c.n_heads = heads;
    c.n_kv_heads = kv;
    c.head_dim = hidden / heads;
    c.d_ff = ffn;
    c.max_pos = T;
    c.norm_eps = 1e-6f;
    c.rope_theta = 10000;
    c.bos_id = c.eos_id = c.pad_id = -1;
    Model m;
    model_init(&m, &c, BACKEND_CPU, B, T);
    model_init_random(&m, 1, 0.02f);
    model_alloc_grads(&m);
    int N = B * T;
    int *tok = malloc(sizeof(int) * N), *tg = malloc(sizeof(int) * N);
    float *logp = malloc(sizeof(float) * N), *dlogp = malloc(sizeof(float) * N);
    for (int i = 0; i < N; i++) {
        philox4 r = philox_draw(2, 0, i);
        tok[i] = (int)(r.v[0] % vocab);
    }
    for (int i = 0; i < N; i++) {
        tg[i] = (i + 1) % T ? tok[i + 1] : -1;
        dlogp[i] = tg[i] >= 0 ? -1.0f / N : 0.0f;
    }
    double best = 1e30, total = 0;
    for (int it = 0; it < iters + 2; it++) {
        double t0 = time_now();
        model_zero_grads(&m);
        model_forward(&m, tok, tg, B, T, logp, NULL);
        model_backward(&m, tok, tg, B, T, dlogp, NULL);
        double dt = time_now() - t0;
        if (it >= 2) { /* two warm-up iterations, as the peer script does */
            total += dt;
            if (dt < best) best = dt;
        }
    }
    double mean = total / iters;
    printf("{\"engine\": \"denserl\", \"tokens_per_s\": %.1f, \"ms_per_iter\": %.2f, "
           "\"best_ms\": %.2f, \"params\": %zu, \"threads\": %d}\n",
           N / mean, 1e3 * mean, 1e3 * best, m.n_params, omp_get_max_threads());
    model_free(&m);
    free(tok);
    free(tg);
    free(logp);
    free(dlogp);
    return 0;
}
