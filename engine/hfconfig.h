/* Hugging Face config.json -> eng_config. Internal to engine/.
 *
 * hf_config_load reads the file (bounded), finds the architecture's entry in the table
 * (model_type, else architectures[]), lets the entry read its keys, and checks what
 * every architecture needs (sizes, token ids below vocab_size). The readers below are
 * what entries read keys with: absent or null keys take the default (as HF does), a key
 * of the wrong JSON type or out of range is an error naming it, and a key given twice
 * takes its last value, as Python's json (and so HF) does. */
#ifndef NLP_HFCONFIG_H
#define NLP_HFCONFIG_H

#include <stddef.h>

#include "engine/eng_int.h"

struct cJSON;

/* Reads config.json into *out and its architecture into *arch. 0, or < 0 with the
 * reason in err (naming the file, and the key or the unsupported model_type). */
int hf_config_load(const char *path, eng_config *out, const eng_arch **arch, char *err,
                   size_t errlen);
/* The same from len bytes of JSON text in memory; `name` stands for the path in messages.
 * arch may be NULL. */
int hf_config_parse(const char *text, size_t len, const char *name, eng_config *out,
                    const eng_arch **arch, char *err, size_t errlen);

/* The checkpoint's generation settings into m->gen / m->gen_set / m->bad_words:
 * dir/generation_config.json, else dir/config.json. 0, or < 0 with the reason in err. */
int hf_generation_load(const char *dir, eng_model *m, char *err, size_t errlen);

/* The value of key in obj (the last one when given twice), NULL when absent or null. */
const struct cJSON *hf_get(const struct cJSON *obj, const char *key);

/* An integer key with its default and bounds, stored at base + off. */
typedef struct hf_int_key {
    const char *key;
    size_t off;
    int def;
    int min, max;
} hf_int_key;

/* Each of n keys: 0, or -1 with "<path>: key 'k' ..." in err. */
int hf_read_ints(const char *path, const struct cJSON *root, const hf_int_key *keys, int n,
                 void *base, char *err, size_t errlen);
/* A number in (lo, hi) exclusive, else def when absent. */
int hf_read_float(const char *path, const struct cJSON *root, const char *key, double def,
                  double lo, double hi, float *out, char *err, size_t errlen);
/* true/false, else def when absent. */
int hf_read_bool(const char *path, const struct cJSON *root, const char *key, int def, int *out,
                 char *err, size_t errlen);
/* A string (NULL when absent), else -1 when present and not a string. */
int hf_read_str(const char *path, const struct cJSON *root, const char *key, const char **out,
                char *err, size_t errlen);
/* The printf-style error writer the readers use. */
void hf_err(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

#endif
