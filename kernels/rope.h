/* Rotary position embedding, Hugging Face rotate-half convention: for head dim D the
 * pairs are (j, j + D/2), out_j = x_j cos - x_{j+D/2} sin, out_{j+D/2} = x_{j+D/2} cos + x_j sin.
 */
#pragma once

/* Fills cos/sin tables (max_pos, D/2) from inv_freq (D/2): angle = pos * inv_freq[j]. */
void rope_tables_cpu(float *cos_t, float *sin_t, const float *inv_freq, int max_pos, int half);
/* Rotates x (n, h, D) in place; row i uses position pos[i]. cos_t/sin_t (max_pos, D/2). */
void rope_forward_cpu(float *x, const int *pos, const float *cos_t, const float *sin_t, int n,
                      int h, int D);
/* Backward of the rotation, in place: dx = R^T dx (the rotation by -angle). */
void rope_backward_cpu(float *dx, const int *pos, const float *cos_t, const float *sin_t, int n,
                       int h, int D);
