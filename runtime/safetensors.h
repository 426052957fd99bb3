/* safetensors files: a reader that memory-maps and validates every header field before any
 * tensor is touched, and an atomic writer. Format: 8-byte little-endian header length N,
 * N bytes of JSON {name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__": {...}},
 * then the data; offsets are relative to the end of the header. */
#pragma once
#include <stddef.h>
#include <stdint.h>

typedef enum { ST_F32 = 0, ST_F16, ST_BF16, ST_I32, ST_I64, ST_F64, ST_U8, ST_BOOL } StDtype;

#define ST_MAX_DIMS 8

typedef struct {
    char *name;
    StDtype dtype;
    int ndim;
    int64_t shape[ST_MAX_DIMS];
    const void *data; /* points into the mapping */
    size_t nbytes;
} StTensor;

typedef struct {
    char *path;
    void *map;
    size_t map_size;
    int n;
    StTensor *tensors;
    char *metadata_json; /* the "__metadata__" object as JSON text, or NULL */
} StFile;

/* Maps and validates PATH: header length within the file, header JSON, known dtypes,
 * shapes that match the byte ranges, offsets within the data and not overlapping.
 * DR_OK, or DR_ERR with "<path>: <what was expected>". */
int st_open(StFile *f, const char *path);
void st_close(StFile *f);
/* The tensor named NAME, or NULL. */
const StTensor *st_find(const StFile *f, const char *name);
/* Element size of a dtype in bytes; name such as "BF16". */
size_t st_dtype_size(StDtype dt);
const char *st_dtype_name(StDtype dt);
int64_t st_numel(const StTensor *t);
/* Converts a F32, F16 or BF16 tensor to fp32 into out (st_numel floats). DR_ERR for other dtypes.
 */
int st_read_f32(const StTensor *t, float *out);

/* One tensor to write: data is fp32 (src_dtype ST_F32) or int32 (ST_I32); fp32 data is
 * stored as store_dtype (ST_F32, ST_BF16 with round-to-nearest-even, or ST_F16). */
typedef struct {
    const char *name;
    StDtype src_dtype;
    StDtype store_dtype;
    int ndim;
    int64_t shape[ST_MAX_DIMS];
    const void *data;
} StEntry;

/* Writes the entries atomically to PATH. metadata_json is a JSON object of string values
 * (or NULL). DR_OK or DR_ERR. */
int st_write(const char *path, const StEntry *entries, int n, const char *metadata_json);

/* bf16/f16 <-> f32 scalar conversions. */
float st_bf16_to_f32(uint16_t h);
uint16_t st_f32_to_bf16(float f);
float st_f16_to_f32(uint16_t h);
uint16_t st_f32_to_f16(float f);
