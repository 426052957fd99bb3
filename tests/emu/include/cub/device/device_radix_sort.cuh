/* cub::DeviceRadixSort on the host, for the CPU emulation of the CUDA backend: SortKeys and
 * SortPairs as kernels/sample_cuda.cu and kernels/elementwise_cuda.cu call them, with cub's
 * contract. A call with d_temp_storage == NULL only sets temp_storage_bytes; otherwise the sort
 * is ascending and stable by bits [begin_bit, end_bit) of the key alone (keys equal in those
 * bits keep their order, as in an LSD radix sort), signed and floating keys ordered by value
 * as cub's bit twiddling orders them. The DoubleBuffer overloads leave the result in the
 * alternate buffer and flip the selector, as cub may, so a caller that reads d_keys.Current()
 * works and one that assumes the first buffer does not. The temporary storage is overwritten
 * with a pattern, as cub's histograms would overwrite it, so that temp storage that overlaps
 * live data shows up here too; too little of it is cudaErrorInvalidValue, as in cub. */
#pragma once
#include <algorithm>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <type_traits>
#include <utility>
#include <vector>
#include <cuda_runtime.h>

namespace cub {

template <typename T> struct DoubleBuffer {
    T *d_buffers[2];
    int selector;

    DoubleBuffer() {
        selector = 0;
        d_buffers[0] = d_buffers[1] = NULL;
    }
    DoubleBuffer(T *d_current, T *d_alternate) {
        selector = 0;
        d_buffers[0] = d_current;
        d_buffers[1] = d_alternate;
    }
    T *Current() { return d_buffers[selector]; }
    T *Alternate() { return d_buffers[selector ^ 1]; }
};

namespace emu {

/* The key's bits as cub sorts them: unsigned as is, signed with the sign bit flipped, floating
 * point with the sign bit flipped for positive values and every bit flipped for negative ones
 * (so that -0.0 sorts before +0.0, as in cub). */
template <typename K> struct Bits {
    typedef typename std::conditional<
        sizeof(K) == 1, uint8_t,
        typename std::conditional<
            sizeof(K) == 2, uint16_t,
            typename std::conditional<sizeof(K) == 4, uint32_t, uint64_t>::type>::type>::type U;

    static U twiddle(K k) {
        U u;
        memcpy(&u, &k, sizeof u);
        const U top = (U)((U)1 << (sizeof(U) * 8 - 1));
        if (std::is_floating_point<K>::value) return (u & top) ? (U)~u : (U)(u | top);
        if (std::is_signed<K>::value) return (U)(u ^ top);
        return u;
    }
};

/* The temp storage cub would ask for, never less for more items or more bits, so that a size
 * asked once for the largest sort covers every smaller one (as callers rely on). */
inline size_t temp_need(long long n, int begin_bit, int end_bit, size_t per_item) {
    const int bits = end_bit > begin_bit ? end_bit - begin_bit : 0;
    const size_t passes = (size_t)(bits + 7) / 8;
    const size_t nn = n > 0 ? (size_t)n : 0;
    return 256 * (1 + passes) + 16 * ((nn + 2047) / 2048) + nn * per_item;
}

/* The order of n keys, stable by bits [begin_bit, end_bit) of their twiddled form. */
template <typename K>
inline std::vector<size_t> order(const K *keys, size_t n, int begin_bit, int end_bit) {
    typedef typename Bits<K>::U U;
    const int nbits = (int)sizeof(U) * 8;
    const int lo = begin_bit < 0 ? 0 : begin_bit, hi = end_bit > nbits ? nbits : end_bit;
    U mask = 0;
    for (int b = lo; b < hi; b++) mask = (U)(mask | (U)((U)1 << b));
    std::vector<std::pair<U, size_t>> v(n);
    for (size_t i = 0; i < n; i++) v[i] = std::make_pair((U)(Bits<K>::twiddle(keys[i]) & mask), i);
    std::stable_sort(v.begin(), v.end(),
                     [](const std::pair<U, size_t> &a, const std::pair<U, size_t> &b) {
                         return a.first < b.first;
                     });
    std::vector<size_t> idx(n);
    for (size_t i = 0; i < n; i++) idx[i] = v[i].second;
    return idx;
}

/* The size query, the size check and the overwrite of the temp storage; 1 means sort. */
inline int temp_begin(void *d_temp_storage, size_t &temp_storage_bytes, size_t need,
                      cudaError_t *err) {
    *err = cudaSuccess;
    if (!d_temp_storage) {
        temp_storage_bytes = need;
        return 0;
    }
    if (temp_storage_bytes < need) {
        *err = cudaErrorInvalidValue;
        return 0;
    }
    memset(d_temp_storage, 0xa5, need);
    return 1;
}

} // namespace emu

struct DeviceRadixSort {
    template <typename KeyT, typename NumItemsT>
    static cudaError_t SortKeys(void *d_temp_storage, size_t &temp_storage_bytes,
                                DoubleBuffer<KeyT> &d_keys, NumItemsT num_items, int begin_bit = 0,
                                int end_bit = sizeof(KeyT) * 8, cudaStream_t stream = 0) {
        (void)stream;
        const long long n = (long long)num_items;
        cudaError_t err;
        if (!emu::temp_begin(d_temp_storage, temp_storage_bytes,
                             emu::temp_need(n, begin_bit, end_bit, 0), &err))
            return err;
        if (n <= 0 || end_bit <= begin_bit) return cudaSuccess; /* cub makes no pass */
        const KeyT *in = d_keys.Current();
        KeyT *out = d_keys.Alternate();
        const std::vector<size_t> idx = emu::order(in, (size_t)n, begin_bit, end_bit);
        for (size_t i = 0; i < (size_t)n; i++) out[i] = in[idx[i]];
        d_keys.selector ^= 1;
        return cudaSuccess;
    }

    template <typename KeyT, typename NumItemsT>
    static cudaError_t SortKeys(void *d_temp_storage, size_t &temp_storage_bytes,
                                const KeyT *d_keys_in, KeyT *d_keys_out, NumItemsT num_items,
                                int begin_bit = 0, int end_bit = sizeof(KeyT) * 8,
                                cudaStream_t stream = 0) {
        (void)stream;
        const long long n = (long long)num_items;
        cudaError_t err; /* cub keeps the alternate keys in the temp storage */
        if (!emu::temp_begin(d_temp_storage, temp_storage_bytes,
                             emu::temp_need(n, begin_bit, end_bit, sizeof(KeyT)), &err))
            return err;
        if (n <= 0) return cudaSuccess;
        const std::vector<KeyT> in(d_keys_in, d_keys_in + n); /* the output may be the input */
        const std::vector<size_t> idx = emu::order(in.data(), (size_t)n, begin_bit, end_bit);
        for (size_t i = 0; i < (size_t)n; i++) d_keys_out[i] = in[idx[i]];
        return cudaSuccess;
    }

    template <typename KeyT, typename ValueT, typename NumItemsT>
    static cudaError_t SortPairs(void *d_temp_storage, size_t &temp_storage_bytes,
                                 DoubleBuffer<KeyT> &d_keys, DoubleBuffer<ValueT> &d_values,
                                 NumItemsT num_items, int begin_bit = 0,
                                 int end_bit = sizeof(KeyT) * 8, cudaStream_t stream = 0) {
        (void)stream;
        const long long n = (long long)num_items;
        cudaError_t err;
        if (!emu::temp_begin(d_temp_storage, temp_storage_bytes,
                             emu::temp_need(n, begin_bit, end_bit, 0), &err))
            return err;
        if (n <= 0 || end_bit <= begin_bit) return cudaSuccess;
        const KeyT *kin = d_keys.Current();
        const ValueT *vin = d_values.Current();
        KeyT *kout = d_keys.Alternate();
        ValueT *vout = d_values.Alternate();
        const std::vector<size_t> idx = emu::order(kin, (size_t)n, begin_bit, end_bit);
        for (size_t i = 0; i < (size_t)n; i++) kout[i] = kin[idx[i]], vout[i] = vin[idx[i]];
        d_keys.selector ^= 1;
        d_values.selector ^= 1;
        return cudaSuccess;
    }

    template <typename KeyT, typename ValueT, typename NumItemsT>
    static cudaError_t SortPairs(void *d_temp_storage, size_t &temp_storage_bytes,
                                 const KeyT *d_keys_in, KeyT *d_keys_out, const ValueT *d_values_in,
                                 ValueT *d_values_out, NumItemsT num_items, int begin_bit = 0,
                                 int end_bit = sizeof(KeyT) * 8, cudaStream_t stream = 0) {
        (void)stream;
        const long long n = (long long)num_items;
        cudaError_t err; /* cub keeps the alternate keys and values in the temp storage */
        if (!emu::temp_begin(d_temp_storage, temp_storage_bytes,
                             emu::temp_need(n, begin_bit, end_bit, sizeof(KeyT) + sizeof(ValueT)),
                             &err))
            return err;
        if (n <= 0) return cudaSuccess;
        const std::vector<KeyT> kin(d_keys_in, d_keys_in + n);
        const std::vector<ValueT> vin(d_values_in, d_values_in + n);
        const std::vector<size_t> idx = emu::order(kin.data(), (size_t)n, begin_bit, end_bit);
        for (size_t i = 0; i < (size_t)n; i++)
            d_keys_out[i] = kin[idx[i]], d_values_out[i] = vin[idx[i]];
        return cudaSuccess;
    }
};

} // namespace cub
