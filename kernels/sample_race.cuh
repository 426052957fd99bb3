/* The one-pass race over a batch of logit rows (sample_gumbel_cuda.cu), shared with
 * sample_cuda.cu's greedy picks: keys (B, device) give sample_gumbel_cpu's Gumbel race at the
 * temperature; keys NULL gives the argmax (lowest token on ties), the temperature unused.
 * logp, when not NULL, gets the chosen token's log-prob under softmax(logits). */
#pragma once
#include <cstdint>

void sample_race_cuda(int *out, float *logp, const float *logits, const uint64_t *keys,
                      uint64_t seed, int B, int V, float temperature);
