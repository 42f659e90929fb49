/* Hugging Face config.json -> eng_config (see hfconfig.h): the file, the dispatch on the
 * architecture, the checks every architecture needs, and the key readers the table's
 * entries use. */
#include "engine/hfconfig.h"
#include "engine/st.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

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

int hf_read_bool(const char *path, const cJSON *root, const char *key, int def, int *out, char *err,
                 size_t errlen)
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

int hf_read_str(const char *path, const cJSON *root, const char *key, const char **out, char *err,
                size_t errlen)
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
            hf_err(err, errlen, "%s: key '%s' = %d not below vocab_size %d", path, ids[i], idv[i],
                   c->vocab_size);
            return -1;
        }
    return 0;
}

int hf_config_load(const char *path, eng_config *out, const eng_arch **arch, char *err,
                   size_t errlen)
{
    size_t n = 0;
    char *buf = st_read_file(path, HF_MAX_CONFIG, &n, err, errlen);
    if (!buf) return ENG_EINVAL;
    int rc = hf_config_parse(buf, n, path, out, arch, err, errlen);
    free(buf);
    return rc;
}

/* len bytes of JSON text into a cJSON object with duplicate keys resolved as Python's
 * json resolves them (the last wins); NULL with the reason in err. */
static cJSON *hf_parse_object(const char *text, size_t len, const char *name, char *err,
                              size_t errlen)
{
    cJSON *root = text ? cJSON_ParseWithLength(text, len) : NULL;
    if (!root || !cJSON_IsObject(root)) {
        hf_err(err, errlen, "%s: %s", name, root ? "not a JSON object" : "not valid JSON");
        cJSON_Delete(root);
        return NULL;
    }
    if (st_json_last_wins(root) != 0) {
        cJSON_Delete(root);
        hf_err(err, errlen, "%s: out of memory", name);
        return NULL;
    }
    return root;
}

int hf_config_parse(const char *text, size_t len, const char *name, eng_config *out,
                    const eng_arch **arch, char *err, size_t errlen)
{
    if (!name) name = "config.json";
    cJSON *root = hf_parse_object(text, len, name, err, errlen);
    if (!root) return ENG_EINVAL;
    eng_config c;
    memset(&c, 0, sizeof c);
    int rc = -1;
    const char *mt = NULL;
    const eng_arch *a = eng_arch_find(name, root, &mt, err, errlen);
    if (a) {
        snprintf(c.model_type, sizeof c.model_type, "%s", mt);
        rc = a->read_config(name, root, &c, err, errlen);
        if (rc == 0) rc = hf_check(name, &c, err, errlen);
    }
    cJSON_Delete(root);
    if (rc != 0) return ENG_EINVAL;
    *out = c;
    if (arch) *arch = a;
    return 0;
}

/* ---- generation settings ---- */

/* Reads the JSON object at path into *out (NULL when the file does not exist). */
static int hf_read_json(const char *path, cJSON **out, char *err, size_t errlen)
{
    *out = NULL;
    if (access(path, F_OK) != 0) return 0;
    size_t n = 0;
    char *buf = st_read_file(path, HF_MAX_CONFIG, &n, err, errlen);
    if (!buf) return -1;
    *out = hf_parse_object(buf, n, path, err, errlen);
    free(buf);
    return *out ? 0 : -1;
}

/* bad_words_ids: a list of non-empty lists of token ids below vocab_size. */
static int hf_bad_words(const char *path, const cJSON *j, eng_model *m, char *err, size_t errlen)
{
    int V = m->cfg.vocab_size, n = 0, total = 0;
    const cJSON *w, *t;
    if (!cJSON_IsArray(j)) goto bad;
    cJSON_ArrayForEach (w, j) {
        if (!cJSON_IsArray(w) || cJSON_GetArraySize(w) == 0) goto bad;
        cJSON_ArrayForEach (t, w) {
            if (!cJSON_IsNumber(t) || t->valuedouble != floor(t->valuedouble) ||
                t->valuedouble < 0 || t->valuedouble >= V)
                goto bad;
            total++;
        }
        n++;
    }
    if (n > 65536 || total > 1 << 20) goto bad;
    m->bad_words = malloc((size_t)(total ? total : 1) * sizeof *m->bad_words);
    m->bad_off = malloc((size_t)(n + 1) * sizeof *m->bad_off);
    if (!m->bad_words || !m->bad_off) {
        hf_err(err, errlen, "%s: out of memory", path);
        return -1;
    }
    int k = 0, i = 0;
    m->bad_off[0] = 0;
    cJSON_ArrayForEach (w, j) {
        cJSON_ArrayForEach (t, w) m->bad_words[k++] = (int32_t)t->valuedouble;
        m->bad_off[++i] = k;
    }
    m->gen.bad_words = m->bad_words;
    m->gen.bad_off = m->bad_off;
    m->gen.n_bad_words = n;
    return 0;
bad:
    hf_err(err, errlen,
           "%s: key 'bad_words_ids' must be a list of non-empty lists of token "
           "ids below vocab_size %d",
           path, V);
    return -1;
}

typedef struct hf_gen_ints {
    int max_len, max_new, min_len, min_new, beams, no_repeat, bos, eos;
} hf_gen_ints;

int hf_generation_load(const char *dir, eng_model *m, char *err, size_t errlen)
{
    char path[1200];
    cJSON *root;
    snprintf(path, sizeof path, "%s/generation_config.json", dir);
    if (hf_read_json(path, &root, err, errlen)) return -1;
    if (!root) { /* as GenerationConfig.from_model_config: config.json's keys */
        snprintf(path, sizeof path, "%s/config.json", dir);
        if (hf_read_json(path, &root, err, errlen)) return -1;
    }
    eng_gen_params *g = &m->gen;
    *g = eng_gen_default_params();
    m->gen_set = 0;
    if (!root) return 0;
    int V = m->cfg.vocab_size, rc = -1;
    /* Integers: -1 means absent. */
    hf_gen_ints v;
#define GOFF(f) offsetof(hf_gen_ints, f)
    static const hf_int_key keys[] = {
        { "max_length", GOFF(max_len), -1, 2, 1 << 20 },
        { "max_new_tokens", GOFF(max_new), -1, 1, 1 << 20 },
        { "min_length", GOFF(min_len), -1, 0, 1 << 20 },
        { "min_new_tokens", GOFF(min_new), -1, 0, 1 << 20 },
        { "num_beams", GOFF(beams), -1, 1, 1024 },
        { "no_repeat_ngram_size", GOFF(no_repeat), -1, 0, 1 << 20 },
        { "forced_bos_token_id", GOFF(bos), -1, 0, (1 << 22) - 1 },
        { "forced_eos_token_id", GOFF(eos), -1, 0, (1 << 22) - 1 },
    };
#undef GOFF
    if (hf_read_ints(path, root, keys, sizeof keys / sizeof keys[0], &v, err, errlen)) goto out;
    if ((v.bos >= V) | (v.eos >= V)) {
        hf_err(err, errlen, "%s: a forced token id is not below vocab_size %d", path, V);
        goto out;
    }
    /* HF's lengths count the decoder start token; max_new_tokens wins over max_length. */
    if (v.max_new > 0) g->max_new_tokens = v.max_new, m->gen_set |= ENG_GEN_SET_MAX_NEW;
    else if (v.max_len > 0) g->max_new_tokens = v.max_len - 1, m->gen_set |= ENG_GEN_SET_MAX_NEW;
    if (v.min_new >= 0) g->min_new_tokens = v.min_new, m->gen_set |= ENG_GEN_SET_MIN_NEW;
    else if (v.min_len > 0) g->min_new_tokens = v.min_len - 1, m->gen_set |= ENG_GEN_SET_MIN_NEW;
    if (v.beams > 0) g->num_beams = v.beams, m->gen_set |= ENG_GEN_SET_BEAMS;
    if (v.no_repeat >= 0)
        g->no_repeat_ngram_size = v.no_repeat, m->gen_set |= ENG_GEN_SET_NO_REPEAT;
    if (v.bos >= 0) g->forced_bos_token_id = v.bos, m->gen_set |= ENG_GEN_SET_FORCED_BOS;
    if (v.eos >= 0) g->forced_eos_token_id = v.eos, m->gen_set |= ENG_GEN_SET_FORCED_EOS;
    if (hf_get(root, "length_penalty")) {
        if (hf_read_float(path, root, "length_penalty", 1.0, -1e6, 1e6, &g->length_penalty, err,
                          errlen))
            goto out;
        m->gen_set |= ENG_GEN_SET_LENGTH_PENALTY;
    }
    if (hf_get(root, "repetition_penalty")) {
        if (hf_read_float(path, root, "repetition_penalty", 1.0, 0.0, 1e6, &g->repetition_penalty,
                          err, errlen))
            goto out;
        m->gen_set |= ENG_GEN_SET_REPETITION_PENALTY;
    }
    const cJSON *es = hf_get(root, "early_stopping");
    if (es) {
        if (cJSON_IsBool(es))
            g->early_stopping = cJSON_IsTrue(es) ? ENG_EARLY_TRUE : ENG_EARLY_FALSE;
        else if (cJSON_IsString(es) && strcmp(es->valuestring, "never") == 0)
            g->early_stopping = ENG_EARLY_NEVER;
        else {
            hf_err(err, errlen, "%s: key 'early_stopping' must be true, false or \"never\"", path);
            goto out;
        }
        m->gen_set |= ENG_GEN_SET_EARLY_STOPPING;
    }
    const cJSON *bw = hf_get(root, "bad_words_ids");
    if (bw) {
        if (hf_bad_words(path, bw, m, err, errlen)) goto out;
        m->gen_set |= ENG_GEN_SET_BAD_WORDS;
    }
    rc = 0;
out:
    cJSON_Delete(root);
    return rc;
}
