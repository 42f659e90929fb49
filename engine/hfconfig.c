/* Hugging Face config.json -> eng_config (see hfconfig.h): the file, the dispatch on the
 * architecture, the checks every architecture needs, and the key readers the table's
 * entries use. */
#include "engine/hfconfig.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define HF_MAX_CONFIG ((size_t)4 << 20) /* real ones are ~2 KB */

void hf_err(char *err, size_t errlen, const char *fmt, ...)
{
    if (!err || errlen == 0) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

const cJSON *hf_get(const cJSON *obj, const char *key)
{
    const cJSON *last = NULL;
    for (const cJSON *j = obj ? obj->child : NULL; j; j = j->next)
        if (j->string && strcmp(j->string, key) == 0) last = j;
    return last && !cJSON_IsNull(last) ? last : NULL;
}

int hf_read_ints(const char *path, const cJSON *root, const hf_int_key *keys, int n, void *base,
                 char *err, size_t errlen)
{
    for (int i = 0; i < n; i++) {
        const hf_int_key *k = &keys[i];
        int *dst = (int *)((char *)base + k->off);
        const cJSON *j = hf_get(root, k->key);
        if (!j) {
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
    return 0;
}

int hf_read_float(const char *path, const cJSON *root, const char *key, double def, double lo,
                  double hi, float *out, char *err, size_t errlen)
{
    const cJSON *j = hf_get(root, key);
    *out = (float)def;
    if (!j) return 0;
    if (!cJSON_IsNumber(j)) {
        hf_err(err, errlen, "%s: key '%s' must be a number", path, key);
        return -1;
    }
    if (!(j->valuedouble > lo && j->valuedouble < hi)) {
        hf_err(err, errlen, "%s: key '%s' = %g out of range (%g, %g)", path, key, j->valuedouble,
               lo, hi);
        return -1;
    }
    *out = (float)j->valuedouble;
    return 0;
}

int hf_read_bool(const char *path, const cJSON *root, const char *key, int def, int *out,
                 char *err, size_t errlen)
{
    const cJSON *j = hf_get(root, key);
    *out = def;
    if (!j) return 0;
    if (!cJSON_IsBool(j)) {
        hf_err(err, errlen, "%s: key '%s' must be true or false", path, key);
        return -1;
    }
    *out = cJSON_IsTrue(j) ? 1 : 0;
    return 0;
}

int hf_read_str(const char *path, const cJSON *root, const char *key, const char **out,
                char *err, size_t errlen)
{
    const cJSON *j = hf_get(root, key);
    *out = NULL;
    if (!j) return 0;
    if (!cJSON_IsString(j)) {
        hf_err(err, errlen, "%s: key '%s' must be a string", path, key);
        return -1;
    }
    *out = j->valuestring;
    return 0;
}

/* What every architecture needs: the engine sizes buffers from these and multiplies
 * them, so a hostile config must not be able to ask for huge allocations. */
static int hf_check(const char *path, const eng_config *c, char *err, size_t errlen)
{
    if ((long)c->num_heads * c->d_kv > 65536) {
        hf_err(err, errlen, "%s: key 'num_heads' x 'd_kv' = %ld out of range (max 65536)", path,
               (long)c->num_heads * c->d_kv);
        return -1;
    }
    const char *ids[] = { "decoder_start_token_id", "eos_token_id", "pad_token_id" };
    const int idv[] = { c->decoder_start_token_id, c->eos_token_id, c->pad_token_id };
    for (int i = 0; i < 3; i++)
        if (idv[i] < 0 || idv[i] >= c->vocab_size) {
            hf_err(err, errlen, "%s: key '%s' = %d not below vocab_size %d", path, ids[i],
                   idv[i], c->vocab_size);
            return -1;
        }
    return 0;
}

int hf_config_load(const char *path, eng_config *out, const eng_arch **arch, char *err,
                   size_t errlen)
{
    FILE *fp = fopen(path, "rb");
    if (!fp) {
        hf_err(err, errlen, "%s: cannot open: %s", path, strerror(errno));
        return ENG_EINVAL;
    }
    char *buf = malloc(HF_MAX_CONFIG + 1);
    if (!buf) {
        fclose(fp);
        hf_err(err, errlen, "%s: out of memory", path);
        return ENG_ENOMEM;
    }
    size_t n = fread(buf, 1, HF_MAX_CONFIG + 1, fp);
    int rd_err = ferror(fp);
    fclose(fp);
    if (rd_err) {
        free(buf);
        hf_err(err, errlen, "%s: read error", path);
        return ENG_EINVAL;
    }
    if (n > HF_MAX_CONFIG) {
        free(buf);
        hf_err(err, errlen, "%s: file too large (limit %zu bytes)", path, HF_MAX_CONFIG);
        return ENG_EINVAL;
    }
    cJSON *root = cJSON_ParseWithLength(buf, n);
    free(buf);
    if (!root) {
        hf_err(err, errlen, "%s: not valid JSON", path);
        return ENG_EINVAL;
    }
    eng_config c;
    memset(&c, 0, sizeof c);
    int rc = -1;
    const eng_arch *a = NULL;
    const char *mt = NULL;
    if (!cJSON_IsObject(root)) {
        hf_err(err, errlen, "%s: not a JSON object", path);
    } else if ((a = eng_arch_find(path, root, &mt, err, errlen)) != NULL) {
        snprintf(c.model_type, sizeof c.model_type, "%s", mt);
        rc = a->read_config(path, root, &c, err, errlen);
        if (rc == 0) rc = hf_check(path, &c, err, errlen);
    }
    cJSON_Delete(root);
    if (rc != 0) return ENG_EINVAL;
    *out = c;
    *arch = a;
    return 0;
}
