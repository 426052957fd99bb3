/* Token embedding lookup and its deterministic scatter-add backward. */
#pragma once

/* y[i,:] = table[ids[i],:].  y (n, d), ids (n), table (V, d). */
void embedding_forward_cpu(float *y, const int *ids, const float *table, int n, int d);
/* dtable[ids[i],:] += dy[i,:], summed in row order so the result is deterministic.
 * dtable (V, d), dy (n, d), ids (n). */
void embedding_backward_cpu(float *dtable, const float *dy, const int *ids, int n, int d);
