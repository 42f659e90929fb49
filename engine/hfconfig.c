/* Hugging Face config.json -> eng_config, for T5ForConditionalGeneration checkpoints.
 *
 * A table gives each integer key its HF T5Config default and the bounds we accept: the
 * engine sizes buffers from these values, so a hostile config must not be able to ask
 * for huge allocations or make products overflow. Absent or null keys take the default
 * (as HF does); present keys of the wrong JSON type are errors naming the key. A key
 * given twice takes its last value, as Python's json (and so HF) does. */
#include "engine/st.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define HF_MAX_CONFIG ((size_t)4 << 20) /* real ones are ~2 KB */

static void hf_err(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void hf_err(char *err, size_t errlen, const char *fmt, ...)
{
    if (!err || errlen == 0) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

typedef struct hf_int_key {
    const char *key;
    size_t off;          /* offsetof(eng_config, field) */
    int def;             /* HF T5Config default; -1: none (handled by the caller) */
    int min, max;
} hf_int_key;

#define HF_OFF(f) offsetof(eng_config, f)

static const hf_int_key hf_int_keys[] = {
    { "vocab_size", HF_OFF(vocab_size), 32128, 1, 1 << 22 },
    { "d_model", HF_OFF(d_model), 512, 1, 65536 },
    { "d_kv", HF_OFF(d_kv), 64, 1, 4096 },
    { "num_heads", HF_OFF(num_heads), 8, 1, 1024 },
    { "d_ff", HF_OFF(d_ff), 2048, 1, 1 << 18 },
    { "num_layers", HF_OFF(num_layers), 6, 1, 256 },
    { "num_decoder_layers", HF_OFF(num_decoder_layers), -1, 1, 256 },
    { "relative_attention_num_buckets", HF_OFF(num_buckets), 32, 4, 4096 },
    { "relative_attention_max_distance", HF_OFF(max_distance), 128, 1, 1 << 20 },
    { "decoder_start_token_id", HF_OFF(decoder_start_token_id), 0, 0, (1 << 22) - 1 },
    { "eos_token_id", HF_OFF(eos_token_id), 1, 0, (1 << 22) - 1 },
    { "pad_token_id", HF_OFF(pad_token_id), 0, 0, (1 << 22) - 1 },
};

/* 1 when present and not null. */
static int hf_present(const cJSON *j) { return j && !cJSON_IsNull(j); }

static int hf_arch_ok(const cJSON *arch)
{
    if (!cJSON_IsArray(arch)) return 0;
    for (const cJSON *a = arch->child; a; a = a->next)
        if (cJSON_IsString(a) && (strcmp(a->valuestring, "T5ForConditionalGeneration") == 0 ||
                                  strcmp(a->valuestring, "MT5ForConditionalGeneration") == 0))
            return 1;
    return 0;
}

static int hf_parse(const char *path, const cJSON *root, eng_config *c, char *err, size_t errlen)
{
    if (!cJSON_IsObject(root)) {
        hf_err(err, errlen, "%s: not a JSON object", path);
        return -1;
    }

    /* Architecture: model_type decides when given; else architectures must name T5. */
    const cJSON *mt = cJSON_GetObjectItemCaseSensitive(root, "model_type");
    const cJSON *arch = cJSON_GetObjectItemCaseSensitive(root, "architectures");
    if (hf_present(arch) && !cJSON_IsArray(arch)) {
        hf_err(err, errlen, "%s: key 'architectures' must be an array of strings", path);
        return -1;
    }
    if (hf_present(mt)) {
        if (!cJSON_IsString(mt)) {
            hf_err(err, errlen, "%s: key 'model_type' must be a string", path);
            return -1;
        }
        if (strcmp(mt->valuestring, "t5") != 0 && strcmp(mt->valuestring, "mt5") != 0) {
            hf_err(err, errlen, "%s: unknown model_type '%.64s' (supported architecture: t5, mt5)",
                   path, mt->valuestring);
            return -1;
        }
    } else if (!hf_arch_ok(arch)) {
        hf_err(err, errlen, "%s: unknown architecture: no model_type and 'architectures' names "
               "no T5ForConditionalGeneration / MT5ForConditionalGeneration", path);
        return -1;
    }

    for (size_t i = 0; i < sizeof hf_int_keys / sizeof hf_int_keys[0]; i++) {
        const hf_int_key *k = &hf_int_keys[i];
        int *dst = (int *)((char *)c + k->off);
        const cJSON *j = cJSON_GetObjectItemCaseSensitive(root, k->key);
        if (!hf_present(j)) {
            *dst = k->def;
            continue;
        }
        if (!cJSON_IsNumber(j) || floor(j->valuedouble) != j->valuedouble) {
            hf_err(err, errlen, "%s: key '%s' must be an integer", path, k->key);
            return -1;
        }
        double v = j->valuedouble;
        if (!(v >= k->min && v <= k->max)) {
            hf_err(err, errlen, "%s: key '%s' = %.17g out of range [%d, %d]", path, k->key, v,
                   k->min, k->max);
            return -1;
        }
        *dst = (int)v;
    }
    if (c->num_decoder_layers < 0) c->num_decoder_layers = c->num_layers;

    /* Cross-key limits: the engine multiplies these. */
    if ((long)c->num_heads * c->d_kv > 65536) {
        hf_err(err, errlen, "%s: key 'num_heads' x 'd_kv' = %ld out of range (max 65536)", path,
               (long)c->num_heads * c->d_kv);
        return -1;
    }
    /* The bucket formula divides by log(max_distance / max_exact), max_exact being at
     * most num_buckets / 2: it must exceed that. */
    if (c->max_distance <= c->num_buckets / 2) {
        hf_err(err, errlen, "%s: key 'relative_attention_max_distance' = %d must exceed "
               "relative_attention_num_buckets / 2 = %d", path, c->max_distance, c->num_buckets / 2);
        return -1;
    }
    const char *ids[] = { "decoder_start_token_id", "eos_token_id", "pad_token_id" };
    const int idv[] = { c->decoder_start_token_id, c->eos_token_id, c->pad_token_id };
    for (int i = 0; i < 3; i++)
        if (idv[i] >= c->vocab_size) {
            hf_err(err, errlen, "%s: key '%s' = %d not below vocab_size %d", path, ids[i], idv[i],
                   c->vocab_size);
            return -1;
        }

    const cJSON *eps = cJSON_GetObjectItemCaseSensitive(root, "layer_norm_epsilon");
    c->layer_norm_eps = 1e-6f;
    if (hf_present(eps)) {
        if (!cJSON_IsNumber(eps)) {
            hf_err(err, errlen, "%s: key 'layer_norm_epsilon' must be a number", path);
            return -1;
        }
        if (!(eps->valuedouble > 0.0 && eps->valuedouble < 1.0)) {
            hf_err(err, errlen, "%s: key 'layer_norm_epsilon' = %g out of range (0, 1)", path,
                   eps->valuedouble);
            return -1;
        }
        c->layer_norm_eps = (float)eps->valuedouble;
    }

    const cJSON *ff = cJSON_GetObjectItemCaseSensitive(root, "feed_forward_proj");
    c->gated = 0;
    if (hf_present(ff)) {
        if (!cJSON_IsString(ff)) {
            hf_err(err, errlen, "%s: key 'feed_forward_proj' must be a string", path);
            return -1;
        }
        /* The engine has relu and gated gelu_new; "gated-relu" (some mT5 variants)
         * would silently compute the wrong function, so it is refused. */
        if (strcmp(ff->valuestring, "relu") == 0)
            c->gated = 0;
        else if (strcmp(ff->valuestring, "gated-gelu") == 0)
            c->gated = 1;
        else {
            hf_err(err, errlen, "%s: unsupported feed_forward_proj '%.64s' (supported: relu, "
                   "gated-gelu)", path, ff->valuestring);
            return -1;
        }
    }

    const cJSON *tie = cJSON_GetObjectItemCaseSensitive(root, "tie_word_embeddings");
    c->tied = 1;
    if (hf_present(tie)) {
        if (!cJSON_IsBool(tie)) {
            hf_err(err, errlen, "%s: key 'tie_word_embeddings' must be true or false", path);
            return -1;
        }
        c->tied = cJSON_IsTrue(tie) ? 1 : 0;
    }
    return 0;
}

int hf_config_load(const char *path, eng_config *out, char *err, size_t errlen)
{
    size_t n = 0;
    char *buf = st_read_file(path, HF_MAX_CONFIG, &n, err, errlen);
    if (!buf) return ENG_EINVAL;
    int rc = hf_config_parse(buf, n, path, out, err, errlen);
    free(buf);
    return rc;
}

int hf_config_parse(const char *text, size_t len, const char *name, eng_config *out, char *err,
                    size_t errlen)
{
    if (!name) name = "config.json";
    cJSON *root = text ? cJSON_ParseWithLength(text, len) : NULL;
    if (!root) {
        hf_err(err, errlen, "%s: not valid JSON", name);
        return ENG_EINVAL;
    }
    if (st_json_last_wins(root) != 0) {
        cJSON_Delete(root);
        hf_err(err, errlen, "%s: out of memory", name);
        return ENG_ENOMEM;
    }
    eng_config c;
    memset(&c, 0, sizeof c);
    int rc = hf_parse(name, root, &c, err, errlen);
    cJSON_Delete(root);
    if (rc != 0) return ENG_EINVAL;
    *out = c;
    return 0;
}
