/* Safetensors checkpoints and Hugging Face config.json, read-only and validated.
 * Internal to engine/ (model.c binds tensors to the forward pass).
 *
 * A st_set is one checkpoint: `model.safetensors`, or the shards named by
 * `model.safetensors.index.json`. Every file is mmapped read-only; tensor data points
 * into the mapping and lives until st_close(). All validation happens in st_open_*():
 * header length past the end, bad JSON, unknown dtype, shape/size mismatch, offsets out
 * of range or overlapping, duplicate names... each a distinct message naming the file
 * and the tensor.
 *
 * JSON objects with a key given twice mean what Python's json (and so Hugging Face)
 * makes of them: the last value wins. The one exception is a tensor name given twice in
 * a safetensors header, which is refused as a duplicate. */
#ifndef NLP_ST_H
#define NLP_ST_H

#include <stddef.h>
#include <stdint.h>

#include "engine/engine.h"

struct cJSON;

/* Values only grow. */
typedef enum st_dtype { ST_F32 = 0, ST_F16 = 1, ST_BF16 = 2 } st_dtype;

#define ST_MAX_DIMS 4

typedef struct st_tensor {
    const char *name;
    st_dtype dtype;
    int ndim;
    int64_t shape[ST_MAX_DIMS];
    const void *data; /* into the mmapped file; aligned as the file has it */
    size_t nbytes;    /* = product(shape) * dtype size, checked */
    const char *file; /* path of the file it lives in (for messages) */
} st_tensor;

typedef struct st_set st_set;

/* Opens a checkpoint directory: model.safetensors, else model.safetensors.index.json
 * and its shards. NULL on error, reason in err. */
st_set *st_open_dir(const char *dir, char *err, size_t errlen);
/* Opens a single .safetensors file. */
st_set *st_open_file(const char *path, char *err, size_t errlen);
/* Parses size bytes of safetensors held by the caller (the parser behind st_open_file,
 * with the same checks and messages; `name` stands for the path in them). Tensor data
 * points into buf, which must outlive the set. */
st_set *st_open_mem(const void *buf, size_t size, const char *name, char *err, size_t errlen);
void st_close(st_set **set);

const st_tensor *st_find(const st_set *set, const char *name); /* NULL if absent */
int st_count(const st_set *set);
const st_tensor *st_at(const st_set *set, int i);
size_t st_dtype_size(st_dtype dt);
const char *st_dtype_name(st_dtype dt);

/* A checkpoint's identity for files derived from it (the int8 cache): a hash of each
 * file's size, modification time and header (names, types, shapes, offsets). */
uint64_t st_identity(const st_set *set);

/* Drops the pages of t (one of set's tensors) from the process's memory, the whole pages
 * inside its data, when it lives in one of set's mmapped files (not a caller's buffer):
 * for a tensor converted at load whose mmapped bytes are no longer read. Reading them
 * again is still correct (they are read back from the file). */
void st_release(const st_set *set, const st_tensor *t);

/* The index of the first NaN or infinity among t's values, or -1 when all are finite.
 * Reads all of t's bytes (any alignment). */
int64_t st_first_nonfinite(const st_tensor *t);

/* Removes every member of obj that a later member of the same name overrides, so that
 * cJSON's lookups (which find the first) and walks see what Python's json sees. Every
 * object read from a checkpoint's JSON goes through this before any lookup. Does nothing
 * to a non-object. 0, or -1 out of memory. */
int st_json_last_wins(struct cJSON *obj);

/* Reads a whole small regular file (not a FIFO or device) of at most `limit` bytes into a
 * new NUL-terminated buffer (the caller frees; *len without the NUL). NULL with the
 * reason in err. */
char *st_read_file(const char *path, size_t limit, size_t *len, char *err, size_t errlen);

#endif
