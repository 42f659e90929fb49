/* Safetensors loader and config.json reader: the tiny checkpoints load, a sharded copy
 * gives the same bytes, and every kind of damage gives its own message naming the file
 * and the tensor (or key). */
#include "tests/harness/harness.h"

#include "engine/hfconfig.h"
#include "engine/st.h"

#include <cjson/cJSON.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- helpers ---- */

static const char *st_tmpdir(void)
{
    static char dir[64];
    snprintf(dir, sizeof dir, "/tmp/nlp-st-XXXXXX");
    REQUIRE(mkdtemp(dir) != NULL);
    return dir;
}

static void st_rmdir(const char *dir)
{
    char cmd[256];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    CHECK(system(cmd) == 0);
}

static void write_bytes(const char *path, const void *p, size_t n)
{
    FILE *f = fopen(path, "wb");
    REQUIRE(f);
    REQUIRE(n == 0 || fwrite(p, 1, n, f) == n);
    REQUIRE(fclose(f) == 0);
}

static void write_text(const char *path, const char *s) { write_bytes(path, s, strlen(s)); }

/* A safetensors file: length prefix `hlen` (normally strlen(header)), the header, then
 * `ndata` bytes of data (byte i = i & 0xff). */
static void write_st_len(const char *path, uint64_t hlen, const char *header, size_t ndata)
{
    size_t hn = strlen(header);
    size_t n = 8 + hn + ndata;
    unsigned char *b = malloc(n);
    REQUIRE(b);
    for (int i = 0; i < 8; i++) b[i] = (unsigned char)(hlen >> (8 * i));
    memcpy(b + 8, header, hn);
    for (size_t i = 0; i < ndata; i++) b[8 + hn + i] = (unsigned char)i;
    write_bytes(path, b, n);
    free(b);
}

static void write_st(const char *path, const char *header, size_t ndata)
{
    write_st_len(path, strlen(header), header, ndata);
}

/* Opens `header` + ndata bytes as a file and expects failure with an error containing
 * `want`, the file path, and `tensor` (when not NULL). */
static void expect_st_err(const char *header, size_t ndata, const char *want, const char *tensor)
{
    const char *dir = st_tmpdir();
    char path[128], err[512] = "";
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    write_st(path, header, ndata);
    st_set *s = st_open_file(path, err, sizeof err);
    CHECK_MSG(s == NULL, "damaged header loaded: %s", header);
    st_close(&s);
    CHECK_MSG(strstr(err, want), "error '%s' lacks '%s'", err, want);
    CHECK_MSG(strstr(err, path), "error '%s' does not name the file", err);
    if (tensor) CHECK_MSG(strstr(err, tensor), "error '%s' does not name tensor '%s'", err, tensor);
    st_rmdir(dir);
}

static float bf16_to_f32(uint16_t h)
{
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

/* ---- the real tiny models ---- */

TEST(st_tiny_t5_loads)
{
    char err[512] = "";
    st_set *s = st_open_dir(th_data("models/tiny-t5"), err, sizeof err);
    REQUIRE_MSG(s, "%s", err);
    CHECK_MSG(st_count(s) == 47, "count %d", st_count(s)); /* 48 header keys - __metadata__ */
    const st_tensor *t = st_find(s, "shared.weight");
    REQUIRE(t);
    CHECK(t->dtype == ST_F32 && t->ndim == 2 && t->shape[0] == 32128 && t->shape[1] == 64);
    CHECK(t->nbytes == 32128u * 64 * 4);
    CHECK(strstr(t->file, "models/tiny-t5/model.safetensors") != NULL);
    t = st_find(s, "encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight");
    REQUIRE(t);
    CHECK(t->ndim == 2 && t->shape[0] == 32 && t->shape[1] == 4);
    t = st_find(s, "decoder.block.1.layer.2.DenseReluDense.wi.weight");
    REQUIRE(t);
    CHECK(t->ndim == 2 && t->shape[0] == 128 && t->shape[1] == 64);
    CHECK(st_find(s, "lm_head.weight") == NULL); /* tied */
    CHECK(st_find(s, "no.such.tensor") == NULL);
    /* The final layer norm is a weight vector of finite values not all equal to zero. */
    t = st_find(s, "encoder.final_layer_norm.weight");
    REQUIRE(t && t->ndim == 1 && t->shape[0] == 64);
    const float *w = t->data;
    int nonzero = 0;
    for (int i = 0; i < 64; i++) {
        CHECK(w[i] == w[i] && w[i] > -100 && w[i] < 100);
        nonzero += w[i] != 0.0f;
    }
    CHECK(nonzero > 0);
    /* st_at walks every tensor; st_find finds each. */
    for (int i = 0; i < st_count(s); i++) CHECK(st_find(s, st_at(s, i)->name) == st_at(s, i));
    CHECK(st_at(s, -1) == NULL && st_at(s, st_count(s)) == NULL);
    st_close(&s);
    CHECK(s == NULL);
}

TEST(st_tiny_flan_bf16_loads)
{
    char err[512] = "";
    st_set *s = st_open_dir(th_data("models/tiny-flan"), err, sizeof err);
    REQUIRE_MSG(s, "%s", err);
    CHECK_MSG(st_count(s) == 61, "count %d", st_count(s));
    const st_tensor *t = st_find(s, "encoder.block.0.layer.0.SelfAttention.q.weight");
    REQUIRE(t);
    CHECK(t->dtype == ST_BF16 && t->shape[0] == 48 && t->shape[1] == 64 &&
          t->nbytes == 48 * 64 * 2);
    t = st_find(s, "encoder.block.0.layer.0.SelfAttention.o.weight");
    REQUIRE(t);
    CHECK(t->shape[0] == 64 && t->shape[1] == 48);
    t = st_find(s, "encoder.block.2.layer.1.DenseReluDense.wi_1.weight");
    REQUIRE(t);
    CHECK(t->shape[0] == 96 && t->shape[1] == 64);
    t = st_find(s, "lm_head.weight");
    REQUIRE(t);
    CHECK(t->shape[0] == 32128 && t->shape[1] == 64);
    CHECK(st_find(s, "encoder.block.3.layer.0.SelfAttention.q.weight") == NULL);
    /* Sample values: random weights of modest size, finite. */
    const uint16_t *h = st_find(s, "shared.weight")->data;
    double sum2 = 0;
    for (int i = 0; i < 1000; i++) {
        float v = bf16_to_f32(h[i]);
        CHECK(v == v && v > -1000 && v < 1000);
        sum2 += (double)v * v;
    }
    CHECK(sum2 > 0);
    CHECK(strcmp(st_dtype_name(ST_BF16), "BF16") == 0 && st_dtype_size(ST_BF16) == 2);
    CHECK(st_dtype_size(ST_F32) == 4 && st_dtype_size(ST_F16) == 2);
    st_close(&s);
}

TEST(st_f16_and_scalar_and_empty)
{
    /* F16, a 0-dim scalar (1 element) and a zero-size tensor all load. */
    const char *dir = st_tmpdir();
    char path[128], err[512] = "";
    snprintf(path, sizeof path, "%s/x.safetensors", dir);
    write_st(path,
             "{\"a\":{\"dtype\":\"F16\",\"shape\":[2,3],\"data_offsets\":[0,12]},"
             "\"s\":{\"dtype\":\"F32\",\"shape\":[],\"data_offsets\":[12,16]},"
             "\"e\":{\"dtype\":\"F32\",\"shape\":[0,5],\"data_offsets\":[16,16]},"
             "\"__metadata__\":{\"format\":\"pt\"}}",
             16);
    st_set *s = st_open_file(path, err, sizeof err);
    REQUIRE_MSG(s, "%s", err);
    CHECK(st_count(s) == 3);
    const st_tensor *a = st_find(s, "a");
    REQUIRE(a);
    CHECK(a->dtype == ST_F16 && a->nbytes == 12 && ((const unsigned char *)a->data)[1] == 1);
    const st_tensor *sc = st_find(s, "s");
    REQUIRE(sc);
    CHECK(sc->ndim == 0 && sc->nbytes == 4 && ((const unsigned char *)sc->data)[0] == 12);
    CHECK(st_find(s, "e") && st_find(s, "e")->nbytes == 0);
    st_close(&s);
    st_rmdir(dir);
}

/* ---- sharded ---- */

/* Writes tensors [i0, i1) ... of `src` with index i % 2 == part into one shard file. */
static void write_shard(const st_set *src, const char *path, int part)
{
    cJSON *h = cJSON_CreateObject();
    size_t off = 0;
    for (int i = 0; i < st_count(src); i++) {
        if (i % 2 != part) continue;
        const st_tensor *t = st_at(src, i);
        cJSON *e = cJSON_AddObjectToObject(h, t->name);
        cJSON_AddStringToObject(e, "dtype", st_dtype_name(t->dtype));
        cJSON *sh = cJSON_AddArrayToObject(e, "shape");
        for (int d = 0; d < t->ndim; d++)
            cJSON_AddItemToArray(sh, cJSON_CreateNumber((double)t->shape[d]));
        cJSON *o = cJSON_AddArrayToObject(e, "data_offsets");
        cJSON_AddItemToArray(o, cJSON_CreateNumber((double)off));
        cJSON_AddItemToArray(o, cJSON_CreateNumber((double)(off + t->nbytes)));
        off += t->nbytes;
    }
    char *js = cJSON_PrintUnformatted(h);
    REQUIRE(js);
    FILE *f = fopen(path, "wb");
    REQUIRE(f);
    uint64_t n = strlen(js);
    unsigned char len[8];
    for (int i = 0; i < 8; i++) len[i] = (unsigned char)(n >> (8 * i));
    fwrite(len, 1, 8, f);
    fwrite(js, 1, n, f);
    for (int i = 0; i < st_count(src); i++)
        if (i % 2 == part) fwrite(st_at(src, i)->data, 1, st_at(src, i)->nbytes, f);
    REQUIRE(fclose(f) == 0);
    free(js);
    cJSON_Delete(h);
}

/* Writes the index for the two shards; `extra` is appended inside weight_map. */
static void write_index(const st_set *src, const char *dir, const char *extra)
{
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap);
    REQUIRE(buf);
    n += (size_t)snprintf(buf + n, cap - n, "{\"metadata\":{\"total_size\":1},\"weight_map\":{");
    for (int i = 0; i < st_count(src); i++)
        n += (size_t)snprintf(buf + n, cap - n, "%s\"%s\":\"model-0000%d-of-00002.safetensors\"",
                              i ? "," : "", st_at(src, i)->name, i % 2 + 1);
    n += (size_t)snprintf(buf + n, cap - n, "%s}}", extra);
    REQUIRE(n < cap);
    char path[256];
    snprintf(path, sizeof path, "%s/model.safetensors.index.json", dir);
    write_text(path, buf);
    free(buf);
}

static const char *make_sharded(st_set **src_out, const char *extra)
{
    char err[512] = "";
    st_set *src = st_open_dir(th_data("models/tiny-t5"), err, sizeof err);
    REQUIRE_MSG(src, "%s", err);
    const char *dir = st_tmpdir();
    char path[256];
    snprintf(path, sizeof path, "%s/model-00001-of-00002.safetensors", dir);
    write_shard(src, path, 0);
    snprintf(path, sizeof path, "%s/model-00002-of-00002.safetensors", dir);
    write_shard(src, path, 1);
    write_index(src, dir, extra);
    *src_out = src;
    return dir;
}

TEST(st_sharded_same_bytes)
{
    st_set *src = NULL;
    const char *dir = make_sharded(&src, "");
    char err[512] = "";
    st_set *s = st_open_dir(dir, err, sizeof err);
    REQUIRE_MSG(s, "%s", err);
    CHECK(st_count(s) == st_count(src));
    int in_second = 0;
    for (int i = 0; i < st_count(src); i++) {
        const st_tensor *a = st_at(src, i), *b = st_find(s, a->name);
        REQUIRE_MSG(b, "missing %s", a->name);
        CHECK(a->dtype == b->dtype && a->ndim == b->ndim && a->nbytes == b->nbytes);
        CHECK(memcmp(a->shape, b->shape, sizeof a->shape) == 0);
        CHECK_MSG(memcmp(a->data, b->data, a->nbytes) == 0, "bytes differ: %s", a->name);
        in_second += strstr(b->file, "00002-of") != NULL;
    }
    CHECK(in_second == st_count(src) / 2);
    st_close(&s);
    st_close(&src);
    st_rmdir(dir);
}

static void expect_dir_err(const char *dir, const char *want, const char *name)
{
    char err[512] = "";
    st_set *s = st_open_dir(dir, err, sizeof err);
    CHECK_MSG(s == NULL, "damaged sharded checkpoint loaded (%s)", want);
    st_close(&s);
    CHECK_MSG(strstr(err, want), "error '%s' lacks '%s'", err, want);
    if (name) CHECK_MSG(strstr(err, name), "error '%s' lacks '%s'", err, name);
}

TEST(st_sharded_damage)
{
    st_set *src = NULL;
    char path[256];

    /* A tensor listed in the index that its shard does not hold. */
    const char *dir = make_sharded(&src, ",\"ghost.weight\":\"model-00001-of-00002.safetensors\"");
    expect_dir_err(dir, "missing from that shard", "ghost.weight");
    expect_dir_err(dir, "model-00001-of-00002.safetensors", NULL);
    /* Listed under the wrong shard. */
    write_index(src, dir, ",\"shared.weight\":\"model-00002-of-00002.safetensors\"");
    expect_dir_err(dir, "found in", "shared.weight");
    /* Shard names that leave the directory. */
    write_index(src, dir, ",\"x\":\"../model.safetensors\"");
    expect_dir_err(dir, "bad shard name", "../model.safetensors");
    write_index(src, dir, ",\"x\":\"/etc/passwd\"");
    expect_dir_err(dir, "bad shard name", "/etc/passwd");
    write_index(src, dir, ",\"x\":7");
    expect_dir_err(dir, "shard name is not a string", "'x'");
    /* A shard that does not exist. */
    write_index(src, dir, ",\"x\":\"model-00003-of-00002.safetensors\"");
    expect_dir_err(dir, "cannot open", "model-00003-of-00002.safetensors");
    /* The same tensor in two shards. */
    write_index(src, dir, "");
    snprintf(path, sizeof path, "%s/model-00003-of-00002.safetensors", dir);
    write_shard(src, path, 0);
    write_index(src, dir, ",\"y\":\"model-00003-of-00002.safetensors\"");
    expect_dir_err(dir, "duplicate tensor name", "also in");
    /* Index that is not JSON / has no weight_map. */
    snprintf(path, sizeof path, "%s/model.safetensors.index.json", dir);
    write_text(path, "{\"weight_map\": ");
    expect_dir_err(dir, "not valid JSON", "index.json");
    write_text(path, "{\"weights\": {}}");
    expect_dir_err(dir, "no \"weight_map\" object", "index.json");
    /* Neither form present. */
    unlink(path);
    expect_dir_err(dir, "no model.safetensors or model.safetensors.index.json", dir);
    st_close(&src);
    st_rmdir(dir);
}

/* ---- damaged single files: one message per kind ---- */

#define T1 "\"t\":{\"dtype\":\"F32\",\"shape\":[2,2],\"data_offsets\":[0,16]}"

TEST(st_damage_header_length)
{
    const char *dir = st_tmpdir();
    char path[128], err[512];
    snprintf(path, sizeof path, "%s/a.safetensors", dir);
    const char *hdr = "{" T1 "}";
    struct {
        uint64_t len;
        const char *want;
    } cases[] = {
        { strlen(hdr) + 17, "past the end of the file" },
        { (uint64_t)1 << 40, "absurd" },
        { UINT64_MAX, "absurd" },
        { 3, "not valid JSON" },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        write_st_len(path, cases[i].len, hdr, 16);
        err[0] = '\0';
        st_set *s = st_open_file(path, err, sizeof err);
        CHECK(s == NULL);
        st_close(&s);
        CHECK_MSG(strstr(err, cases[i].want) && strstr(err, path), "case %zu: '%s'", i, err);
    }
    /* Shorter than the length field itself, and empty. */
    write_bytes(path, "\x10\0\0", 3);
    st_set *s = st_open_file(path, err, sizeof err);
    CHECK(s == NULL && strstr(err, "too short") && strstr(err, path));
    write_bytes(path, "", 0);
    s = st_open_file(path, err, sizeof err);
    CHECK(s == NULL && strstr(err, "too short"));
    /* Missing file, directory. */
    snprintf(path, sizeof path, "%s/none.safetensors", dir);
    s = st_open_file(path, err, sizeof err);
    CHECK(s == NULL && strstr(err, "cannot open") && strstr(err, path));
    s = st_open_file(dir, err, sizeof err);
    CHECK(s == NULL && strstr(err, "not a regular file"));
    st_rmdir(dir);
}

TEST(st_damage_json)
{
    expect_st_err("{\"t\":{\"dtype\":\"F32\",", 0, "not valid JSON", NULL);
    expect_st_err("[1,2,3]", 0, "not a JSON object", NULL);
    expect_st_err("\"str\"", 0, "not a JSON object", NULL);
    expect_st_err("{\"t\":[1,2]}", 0, "entry is not a JSON object", "'t'");
    expect_st_err("{\"__metadata__\":5}", 0, "__metadata__ is not a JSON object", NULL);
    /* Hostile: nesting far past cJSON's limit is refused, not a stack overflow. */
    size_t depth = 200000;
    char *deep = malloc(2 * depth + 16);
    REQUIRE(deep);
    strcpy(deep, "{\"t\":");
    size_t n = strlen(deep);
    for (size_t i = 0; i < depth; i++) deep[n++] = '[';
    for (size_t i = 0; i < depth; i++) deep[n++] = ']';
    deep[n++] = '}';
    deep[n] = '\0';
    expect_st_err(deep, 0, "not valid JSON", NULL);
    free(deep);
    /* NUL inside the header. */
    const char *dir = st_tmpdir();
    char path[128], err[512] = "";
    snprintf(path, sizeof path, "%s/n.safetensors", dir);
    write_bytes(path, "\x06\0\0\0\0\0\0\0{\0\"a\":1}", 14);
    st_set *s = st_open_file(path, err, sizeof err);
    CHECK(s == NULL && strstr(err, "JSON"));
    st_rmdir(dir);
}

TEST(st_damage_dtype)
{
    expect_st_err("{\"w\":{\"dtype\":7,\"shape\":[1],\"data_offsets\":[0,4]}}", 4,
                  "dtype missing or not a string", "'w'");
    expect_st_err("{\"w\":{\"shape\":[1],\"data_offsets\":[0,4]}}", 4,
                  "dtype missing or not a string", "'w'");
    expect_st_err("{\"w\":{\"dtype\":\"I64\",\"shape\":[1],\"data_offsets\":[0,8]}}", 8,
                  "unsupported dtype 'I64'", "'w'");
    expect_st_err("{\"w\":{\"dtype\":\"f32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4,
                  "unsupported dtype", "'w'");
}

TEST(st_damage_shape)
{
    expect_st_err("{\"w\":{\"dtype\":\"F32\",\"shape\":4,\"data_offsets\":[0,16]}}", 16,
                  "shape missing or not an array", "'w'");
    expect_st_err("{\"w\":{\"dtype\":\"F32\",\"shape\":[2,-2],\"data_offsets\":[0,16]}}", 16,
                  "shape[1] is not a non-negative integer", "'w'");
    expect_st_err("{\"w\":{\"dtype\":\"F32\",\"shape\":[2.5],\"data_offsets\":[0,16]}}", 16,
                  "shape[0] is not a non-negative integer", "'w'");
    expect_st_err("{\"w\":{\"dtype\":\"F32\",\"shape\":[\"2\"],\"data_offsets\":[0,16]}}", 16,
                  "shape[0] is not a non-negative integer", "'w'");
    expect_st_err("{\"w\":{\"dtype\":\"F32\",\"shape\":[1,1,1,1,4],\"data_offsets\":[0,16]}}", 16,
                  "too many dims", "'w'");
    expect_st_err("{\"w\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296],"
                  "\"data_offsets\":[0,16]}}",
                  16, "shape product overflows", "'w'");
    expect_st_err("{\"w\":{\"dtype\":\"F32\",\"shape\":[1e300],\"data_offsets\":[0,16]}}", 16,
                  "not a non-negative integer", "'w'");
}

TEST(st_damage_offsets)
{
    expect_st_err("{\"w\":{\"dtype\":\"F32\",\"shape\":[4]}}", 16, "data_offsets malformed", "'w'");
    expect_st_err("{\"w\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0]}}", 16,
                  "data_offsets malformed (want [begin, end])", "'w'");
    expect_st_err("{\"w\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16,32]}}", 32,
                  "data_offsets malformed (want [begin, end])", "'w'");
    expect_st_err("{\"w\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[\"0\",16]}}", 16,
                  "not non-negative integers", "'w'");
    expect_st_err("{\"w\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[-16,0]}}", 16,
                  "not non-negative integers", "'w'");
    expect_st_err("{\"w\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[16,0]}}", 16,
                  "end 0 < begin 16", "'w'");
    expect_st_err("{\"w\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]}}", 12,
                  "past the end of the data region", "'w'");
    expect_st_err(
        "{\"w\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,18446744073709551615]}}", 16,
        "not non-negative integers", "'w'");
    expect_st_err("{\"w\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,12]}}", 16,
                  "does not match shape", "'w'");
    expect_st_err("{\"w\":{\"dtype\":\"BF16\",\"shape\":[4],\"data_offsets\":[0,16]}}", 16,
                  "size 16 bytes does not match shape (4 elements of BF16)", "'w'");
}

TEST(st_damage_overlap_duplicate)
{
    expect_st_err("{\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]},"
                  "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[12,20]}}",
                  20, "overlapping tensor 'a'", "'b'");
    /* Listed out of order: still caught, since ranges are sorted by begin. */
    expect_st_err("{\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,16]},"
                  "\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]}}",
                  16, "overlapping", "'b'");
    expect_st_err("{\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]},"
                  "\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[16,32]}}",
                  32, "duplicate tensor name", "'a'");
}

TEST(st_damage_truncated_real_file)
{
    /* The tiny checkpoint cut short: the last tensors' data is gone. */
    const char *dir = st_tmpdir();
    char path[128], err[512] = "";
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    FILE *in = fopen(th_data("models/tiny-t5/model.safetensors"), "rb");
    REQUIRE(in);
    size_t cap = 20u << 20;
    char *buf = malloc(cap);
    REQUIRE(buf);
    size_t n = fread(buf, 1, cap, in);
    fclose(in);
    REQUIRE(n > 1000 && n < cap);
    write_bytes(path, buf, n - 100);
    st_set *s = st_open_dir(dir, err, sizeof err);
    CHECK(s == NULL);
    CHECK_MSG(strstr(err, "past the end of the data region") && strstr(err, path) &&
                  strstr(err, "tensor '"),
              "'%s'", err);
    /* Cut inside the header. */
    write_bytes(path, buf, 2000);
    s = st_open_dir(dir, err, sizeof err);
    CHECK(s == NULL);
    CHECK_MSG(strstr(err, "past the end of the file"), "'%s'", err);
    free(buf);
    st_rmdir(dir);
}

/* ---- config.json ---- */

static int load_cfg_text(const char *text, eng_config *c, char *err, size_t errlen)
{
    const char *dir = st_tmpdir();
    char path[128];
    snprintf(path, sizeof path, "%s/config.json", dir);
    write_text(path, text);
    int rc = hf_config_load(path, c, &(const eng_arch *){ NULL }, err, errlen);
    st_rmdir(dir);
    return rc;
}

static void expect_cfg_err(const char *text, const char *want)
{
    eng_config c;
    char err[512] = "";
    int rc = load_cfg_text(text, &c, err, sizeof err);
    CHECK_MSG(rc < 0, "bad config accepted: %s", text);
    CHECK_MSG(strstr(err, want), "error '%s' lacks '%s'", err, want);
    CHECK_MSG(strstr(err, "config.json"), "error '%s' does not name the file", err);
}

TEST(hfcfg_tiny_models)
{
    eng_config c;
    char err[512] = "";
    REQUIRE_MSG(hf_config_load(th_data("models/tiny-t5/config.json"), &c,
                               &(const eng_arch *){ NULL }, err, sizeof err) == 0,
                "%s", err);
    CHECK(c.vocab_size == 32128 && c.d_model == 64 && c.d_kv == 16 && c.num_heads == 4);
    CHECK(c.d_ff == 128 && c.num_layers == 2 && c.num_decoder_layers == 2);
    CHECK(c.arch.num_buckets == 32 && c.arch.max_distance == 128 && c.arch.norm_eps == 1e-6f);
    CHECK(c.arch.gated == 0 && c.arch.tied == 1);
    CHECK(c.decoder_start_token_id == 0 && c.eos_token_id == 1 && c.pad_token_id == 0);
    REQUIRE_MSG(hf_config_load(th_data("models/tiny-flan/config.json"), &c,
                               &(const eng_arch *){ NULL }, err, sizeof err) == 0,
                "%s", err);
    CHECK(c.d_kv == 8 && c.num_heads == 6 && c.d_ff == 96);
    CHECK(c.num_layers == 3 && c.num_decoder_layers == 2 && c.arch.gated == 1 && c.arch.tied == 0);
    REQUIRE_MSG(hf_config_load(th_data("configs/flan-t5-base.json"), &c,
                               &(const eng_arch *){ NULL }, err, sizeof err) == 0,
                "%s", err);
    CHECK(c.d_model == 768 && c.num_heads == 12 && c.d_ff == 2048 && c.num_layers == 12);
    REQUIRE_MSG(hf_config_load(th_data("configs/t5-small.json"), &c, &(const eng_arch *){ NULL },
                               err, sizeof err) == 0,
                "%s", err);
    CHECK(c.d_model == 512 && c.arch.gated == 0 && c.arch.tied == 1 && c.num_decoder_layers == 6);
}

TEST(hfcfg_defaults)
{
    eng_config c;
    char err[512] = "";
    REQUIRE_MSG(load_cfg_text("{\"model_type\":\"t5\"}", &c, err, sizeof err) == 0, "%s", err);
    CHECK(c.vocab_size == 32128 && c.d_model == 512 && c.d_kv == 64 && c.d_ff == 2048);
    CHECK(c.num_layers == 6 && c.num_decoder_layers == 6 && c.num_heads == 8);
    CHECK(c.arch.num_buckets == 32 && c.arch.max_distance == 128 && c.arch.norm_eps == 1e-6f);
    CHECK(c.arch.gated == 0 && c.arch.tied == 1 && c.decoder_start_token_id == 0);
    CHECK(c.eos_token_id == 1 && c.pad_token_id == 0);
    /* num_decoder_layers follows num_layers when absent or null. */
    REQUIRE(load_cfg_text("{\"model_type\":\"mt5\",\"num_layers\":3,\"num_decoder_layers\":null}",
                          &c, err, sizeof err) == 0);
    CHECK(c.num_layers == 3 && c.num_decoder_layers == 3);
    /* architectures alone identifies the model. */
    REQUIRE_MSG(load_cfg_text("{\"architectures\":[\"MT5ForConditionalGeneration\"],"
                              "\"feed_forward_proj\":\"gated-gelu\",\"tie_word_embeddings\":false}",
                              &c, err, sizeof err) == 0,
                "%s", err);
    CHECK(c.arch.gated == 1 && c.arch.tied == 0);
}

TEST(hfcfg_hostile)
{
    expect_cfg_err("{\"model_type\":\"pegasus\"}", "unknown model_type 'pegasus'");
    expect_cfg_err("{\"model_type\":5}", "key 'model_type' must be a string");
    expect_cfg_err("{\"architectures\":[\"PegasusForConditionalGeneration\"]}",
                   "unknown architecture");
    expect_cfg_err("{}", "unknown architecture");
    expect_cfg_err("{\"model_type\":\"t5\",\"architectures\":\"T5\"}",
                   "'architectures' must be an array");
    expect_cfg_err("{\"model_type\":\"t5\",\"feed_forward_proj\":\"gated-relu\"}",
                   "unsupported feed_forward_proj 'gated-relu'");
    expect_cfg_err("{\"model_type\":\"t5\",\"feed_forward_proj\":\"swish\"}", "'swish'");
    expect_cfg_err("{\"model_type\":\"t5\",\"feed_forward_proj\":1}",
                   "key 'feed_forward_proj' must be a string");
    expect_cfg_err("{\"model_type\":\"t5\",\"d_model\":\"512\"}",
                   "key 'd_model' must be an integer");
    expect_cfg_err("{\"model_type\":\"t5\",\"d_model\":512.5}", "key 'd_model' must be an integer");
    expect_cfg_err("{\"model_type\":\"t5\",\"d_model\":[512]}", "key 'd_model' must be an integer");
    expect_cfg_err("{\"model_type\":\"t5\",\"d_model\":1e12}",
                   "key 'd_model' = 1000000000000 out of range");
    expect_cfg_err("{\"model_type\":\"t5\",\"vocab_size\":0}", "key 'vocab_size' = 0 out of range");
    expect_cfg_err("{\"model_type\":\"t5\",\"vocab_size\":-5}",
                   "key 'vocab_size' = -5 out of range");
    expect_cfg_err("{\"model_type\":\"t5\",\"num_layers\":100000}", "key 'num_layers'");
    expect_cfg_err("{\"model_type\":\"t5\",\"num_decoder_layers\":0}", "key 'num_decoder_layers'");
    expect_cfg_err("{\"model_type\":\"t5\",\"num_heads\":1024,\"d_kv\":4096}",
                   "'num_heads' x 'd_kv'");
    expect_cfg_err("{\"model_type\":\"t5\",\"relative_attention_num_buckets\":2}",
                   "key 'relative_attention_num_buckets'");
    expect_cfg_err("{\"model_type\":\"t5\",\"relative_attention_max_distance\":8}",
                   "must exceed relative_attention_num_buckets / 2");
    expect_cfg_err("{\"model_type\":\"t5\",\"vocab_size\":100,\"eos_token_id\":100}",
                   "key 'eos_token_id' = 100 not below vocab_size");
    expect_cfg_err("{\"model_type\":\"t5\",\"layer_norm_epsilon\":\"1e-6\"}",
                   "key 'layer_norm_epsilon' must be a number");
    expect_cfg_err("{\"model_type\":\"t5\",\"layer_norm_epsilon\":0}",
                   "'layer_norm_epsilon' = 0 out of range");
    expect_cfg_err("{\"model_type\":\"t5\",\"tie_word_embeddings\":\"yes\"}",
                   "key 'tie_word_embeddings' must be true or false");
    expect_cfg_err("{\"model_type\":\"t5\",", "not valid JSON");
    expect_cfg_err("[\"t5\"]", "not a JSON object");
    expect_cfg_err("", "not valid JSON");
    /* Deep nesting and a file too large are refused without a crash. */
    size_t depth = 200000;
    char *deep = malloc(2 * depth + 2);
    REQUIRE(deep);
    for (size_t i = 0; i < depth; i++) deep[i] = '[';
    for (size_t i = 0; i < depth; i++) deep[depth + i] = ']';
    deep[2 * depth] = '\0';
    expect_cfg_err(deep, "not valid JSON");
    free(deep);
    size_t big = (5u << 20);
    char *huge = malloc(big + 1);
    REQUIRE(huge);
    memset(huge, ' ', big);
    huge[0] = '{';
    huge[big - 1] = '}';
    huge[big] = '\0';
    expect_cfg_err(huge, "too large");
    free(huge);
    eng_config c;
    char err[256] = "";
    CHECK(hf_config_load("/nonexistent/config.json", &c, &(const eng_arch *){ NULL }, err,
                         sizeof err) < 0);
    CHECK(strstr(err, "cannot open") && strstr(err, "/nonexistent/config.json"));
}

/* ---- in memory: the same parser as the file path ---- */

/* A safetensors image in memory: header (unpadded) + ndata bytes; caller frees. */
static unsigned char *mem_st(const char *header, const void *data, size_t ndata, size_t *n)
{
    size_t hn = strlen(header);
    *n = 8 + hn + ndata;
    unsigned char *b = malloc(*n + 1);
    REQUIRE(b);
    for (int i = 0; i < 8; i++) b[i] = (unsigned char)((uint64_t)hn >> (8 * i));
    memcpy(b + 8, header, hn);
    if (ndata) memcpy(b + 8 + hn, data, ndata);
    return b;
}

TEST(st_open_mem_same_as_file)
{
    FILE *in = fopen(th_data("models/tiny-t5/model.safetensors"), "rb");
    REQUIRE(in);
    size_t cap = 20u << 20;
    unsigned char *buf = malloc(cap);
    REQUIRE(buf);
    size_t n = fread(buf, 1, cap, in);
    fclose(in);
    REQUIRE(n > 1000 && n < cap);
    char err[512] = "";
    st_set *f = st_open_dir(th_data("models/tiny-t5"), err, sizeof err);
    REQUIRE_MSG(f, "%s", err);
    st_set *m = st_open_mem(buf, n, "mem:tiny-t5", err, sizeof err);
    REQUIRE_MSG(m, "%s", err);
    CHECK(st_count(m) == st_count(f));
    for (int i = 0; i < st_count(f); i++) {
        const st_tensor *a = st_at(f, i), *b = st_at(m, i);
        CHECK(!strcmp(a->name, b->name) && a->dtype == b->dtype && a->nbytes == b->nbytes);
        CHECK(!memcmp(a->shape, b->shape, sizeof a->shape) && !memcmp(a->data, b->data, a->nbytes));
        CHECK((const unsigned char *)b->data >= buf &&
              (const unsigned char *)b->data + b->nbytes <= buf + n);
        CHECK(!strcmp(b->file, "mem:tiny-t5"));
    }
    st_close(&m);
    st_close(&f);
    /* Damage gets the file path's messages, naming the buffer. */
    m = st_open_mem(buf, n - 100, "mem:cut", err, sizeof err);
    CHECK(m == NULL);
    CHECK_MSG(strstr(err, "mem:cut: tensor '") && strstr(err, "past the end of the data region"),
              "%s", err);
    m = st_open_mem(buf, 7, "mem:short", err, sizeof err);
    CHECK(m == NULL && strstr(err, "mem:short: truncated: 7 bytes, too short"));
    m = st_open_mem(NULL, 0, NULL, err, sizeof err);
    CHECK(m == NULL && strstr(err, "too short"));
    free(buf);
    /* A hand-made image, header unpadded: F16 data wherever that leaves it. */
    static const uint16_t h[3] = { 0x3c00, 0xc000, 0x7bff };
    size_t len;
    unsigned char *img = mem_st("{\"h\":{\"dtype\":\"F16\",\"shape\":[3],\"data_offsets\":[0,6]}}",
                                h, sizeof h, &len);
    m = st_open_mem(img, len, "img", err, sizeof err);
    REQUIRE_MSG(m, "%s", err);
    const st_tensor *t = st_find(m, "h");
    CHECK(st_count(m) == 1 && t && t->nbytes == 6 && !memcmp(t->data, h, 6));
    st_close(&m);
    free(img);
    /* A 0-byte file is refused the same way, before any mmap. */
    const char *dir = st_tmpdir();
    char path[128];
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    write_bytes(path, "", 0);
    f = st_open_file(path, err, sizeof err);
    CHECK(f == NULL && strstr(err, "truncated: 0 bytes"));
    st_rmdir(dir);
}

TEST(hfcfg_parse_in_memory)
{
    eng_config c;
    char err[256] = "";
    const char *js = "{\"model_type\":\"t5\",\"d_model\":64}";
    REQUIRE_MSG(hf_config_parse(js, strlen(js), "mem.json", &c, NULL, err, sizeof err) == 0, "%s",
                err);
    CHECK(c.d_model == 64 && c.d_kv == 64);
    /* not NUL-terminated: only len bytes count */
    CHECK(hf_config_parse("{\"model_type\":\"t5\"}xx", 19, "mem.json", &c, NULL, err, sizeof err) ==
          0);
    CHECK(hf_config_parse(js, 10, "mem.json", &c, NULL, err, sizeof err) < 0);
    CHECK(strstr(err, "mem.json: not valid JSON"));
    CHECK(hf_config_parse(NULL, 0, NULL, &c, NULL, err, sizeof err) < 0 &&
          strstr(err, "not valid JSON"));
}

/* ---- NaN and infinity: the load-time scan ---- */

/* Opens one tensor of `n` values of dtype dt (bits in vals, esz bytes each) placed `skew`
 * bytes into the data region, and returns st_first_nonfinite of it. */
static int64_t scan_one(const char *dt, size_t esz, const void *vals, size_t n, size_t skew)
{
    char hdr[256];
    snprintf(hdr, sizeof hdr,
             "{\"pad\":{\"dtype\":\"BF16\",\"shape\":[%zu],\"data_offsets\":[0,%zu]},"
             "\"t\":{\"dtype\":\"%s\",\"shape\":[%zu],\"data_offsets\":[%zu,%zu]}}",
             skew / 2, skew, dt, n, skew, skew + n * esz);
    unsigned char *data = calloc(1, skew + n * esz + 1);
    REQUIRE(data);
    memcpy(data + skew, vals, n * esz);
    size_t len;
    unsigned char *img = mem_st(hdr, data, skew + n * esz, &len);
    char err[256];
    st_set *s = st_open_mem(img, len, "scan", err, sizeof err);
    REQUIRE_MSG(s, "%s", err);
    int64_t r = st_first_nonfinite(st_find(s, "t"));
    st_close(&s);
    free(img);
    free(data);
    return r;
}

TEST(st_nonfinite_scan)
{
    enum { N = 200 }; /* three whole blocks of 64 and a tail of 8 */
    static const struct {
        const char *dt;
        size_t esz;
        uint32_t fin[6]; /* finite edge values: max, -max, smallest subnormal, -0, 1, -1 */
        uint32_t bad[4]; /* +inf, -inf, quiet NaN, NaN with the sign set */
    } kinds[] = {
        { "F32",
          4,
          { 0x7f7fffff, 0xff7fffff, 0x00000001, 0x80000000, 0x3f800000, 0xbf800000 },
          { 0x7f800000, 0xff800000, 0x7fc00000, 0xffc00001 } },
        { "F16",
          2,
          { 0x7bff, 0xfbff, 0x0001, 0x8000, 0x3c00, 0xbc00 },
          { 0x7c00, 0xfc00, 0x7e00, 0xfc01 } },
        { "BF16",
          2,
          { 0x7f7f, 0xff7f, 0x0001, 0x8000, 0x3f80, 0xbf80 },
          { 0x7f80, 0xff80, 0x7fc0, 0xff81 } },
    };
    static const size_t at[] = { 0, 63, 64, 130, 191, 192, 199 };
    for (size_t k = 0; k < sizeof kinds / sizeof kinds[0]; k++) {
        unsigned char v[N * 4];
        size_t esz = kinds[k].esz;
        for (size_t i = 0; i < N; i++) {
            uint32_t x = kinds[k].fin[i % 6];
            memcpy(v + i * esz, &x, esz); /* little-endian: the low bytes */
        }
        for (size_t skew = 0; skew <= 2; skew += 2) { /* F32 data 2 bytes off alignment too */
            CHECK_MSG(scan_one(kinds[k].dt, esz, v, N, skew) == -1, "%s: finite values flagged",
                      kinds[k].dt);
            for (size_t b = 0; b < 4; b++)
                for (size_t a = 0; a < sizeof at / sizeof at[0]; a++) {
                    unsigned char w[N * 4];
                    memcpy(w, v, sizeof w);
                    memcpy(w + at[a] * esz, &kinds[k].bad[b], esz);
                    /* a second bad value later: the first is reported */
                    if (at[a] + 5 < N) memcpy(w + (at[a] + 5) * esz, &kinds[k].bad[b], esz);
                    int64_t r = scan_one(kinds[k].dt, esz, w, N, skew);
                    CHECK_MSG(r == (int64_t)at[a], "%s bits %#x at %zu (skew %zu): got %lld",
                              kinds[k].dt, (unsigned)kinds[k].bad[b], at[a], skew, (long long)r);
                }
        }
        /* short tensors (tail only) and an empty one */
        CHECK(scan_one(kinds[k].dt, esz, kinds[k].bad, 1, 0) == 0);
        CHECK(scan_one(kinds[k].dt, esz, v, 0, 0) == -1);
    }
}

/* ---- duplicate JSON keys: the last wins, as in Python ---- */

TEST(st_json_last_wins_helper)
{
    cJSON *o = cJSON_Parse("{\"a\":1,\"b\":2,\"a\":3,\"c\":{\"x\":1,\"x\":2},\"b\":4,\"a\":5}");
    REQUIRE(o);
    REQUIRE(st_json_last_wins(o) == 0);
    CHECK(cJSON_GetArraySize(o) == 3);
    CHECK(cJSON_GetObjectItemCaseSensitive(o, "a")->valueint == 5);
    CHECK(cJSON_GetObjectItemCaseSensitive(o, "b")->valueint == 4);
    /* only the object given: nested ones are for their readers to pass */
    CHECK(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(o, "c")) == 2);
    cJSON_Delete(o);
    /* many members (past the on-stack array), case-sensitive keys */
    cJSON *m = cJSON_CreateObject();
    for (int i = 0; i < 300; i++) {
        char k[16];
        snprintf(k, sizeof k, "k%d", i % 100);
        cJSON_AddNumberToObject(m, k, i);
    }
    cJSON_AddNumberToObject(m, "K1", -1);
    REQUIRE(st_json_last_wins(m) == 0);
    CHECK(cJSON_GetArraySize(m) == 101);
    CHECK(cJSON_GetObjectItemCaseSensitive(m, "k7")->valueint == 207);
    CHECK(cJSON_GetObjectItemCaseSensitive(m, "K1")->valueint == -1);
    cJSON_Delete(m);
    cJSON *arr = cJSON_Parse("[1,1]");
    CHECK(st_json_last_wins(arr) == 0 && cJSON_GetArraySize(arr) == 2);
    cJSON_Delete(arr);
    CHECK(st_json_last_wins(NULL) == 0);
}

TEST(hfcfg_duplicate_keys_last_wins)
{
    eng_config c;
    char err[512] = "";
    /* the first value would be refused; the last one is what HF reads */
    REQUIRE_MSG(load_cfg_text("{\"model_type\":\"pegasus\",\"model_type\":\"t5\",\"d_model\":\"x\","
                              "\"d_model\":64,\"feed_forward_proj\":\"relu\","
                              "\"feed_forward_proj\":\"gated-gelu\",\"tie_word_embeddings\":true,"
                              "\"tie_word_embeddings\":false,\"layer_norm_epsilon\":1e-6,"
                              "\"layer_norm_epsilon\":1e-5,\"num_decoder_layers\":2,"
                              "\"num_decoder_layers\":null}",
                              &c, err, sizeof err) == 0,
                "%s", err);
    CHECK(c.d_model == 64 && c.arch.gated == 1 && c.arch.tied == 0 && c.arch.norm_eps == 1e-5f);
    CHECK(c.num_decoder_layers == c.num_layers); /* null last: the default */
    /* and a bad last value is refused even after a good first one */
    expect_cfg_err("{\"model_type\":\"t5\",\"model_type\":\"pegasus\"}",
                   "unknown model_type 'pegasus'");
    expect_cfg_err("{\"model_type\":\"t5\",\"d_model\":64,\"d_model\":1e12}", "key 'd_model'");
    expect_cfg_err(
        "{\"model_type\":\"t5\",\"vocab_size\":100,\"eos_token_id\":1,\"eos_token_id\":100}",
        "key 'eos_token_id' = 100 not below vocab_size");
}

TEST(st_duplicate_keys_last_wins)
{
    /* inside a tensor's entry */
    static const float four[4] = { 1, 2, 3, 4 };
    size_t n;
    char err[512] = "";
    unsigned char *img = mem_st("{\"w\":{\"dtype\":\"I64\",\"shape\":[9],\"data_offsets\":[0,0],"
                                "\"dtype\":\"F32\",\"shape\":[2,2],\"data_offsets\":[0,16]}}",
                                four, sizeof four, &n);
    st_set *s = st_open_mem(img, n, "dup", err, sizeof err);
    REQUIRE_MSG(s, "%s", err);
    const st_tensor *t = st_find(s, "w");
    CHECK(t && t->dtype == ST_F32 && t->ndim == 2 && t->shape[1] == 2 && t->nbytes == 16);
    st_close(&s);
    free(img);
    img = mem_st(
        "{\"w\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16],\"dtype\":\"BF16\"}}",
        four, sizeof four, &n);
    s = st_open_mem(img, n, "dup", err, sizeof err);
    CHECK(s == NULL && strstr(err, "(4 elements of BF16)"));
    free(img);
    /* a tensor named twice in one header stays an error (see st.h) */
    expect_st_err("{\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]},"
                  "\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[16,32]}}",
                  32, "duplicate tensor name", "'a'");

    /* the sharded index: a tensor listed twice is in the shard named last */
    st_set *src = NULL;
    const char *dir = make_sharded(&src, ",\"shared.weight\":\"model-00002-of-00002.safetensors\"");
    expect_dir_err(dir, "found in", "shared.weight"); /* last names the wrong shard */
    const st_tensor *sw = st_find(src, "shared.weight");
    int i_sw = 0;
    while (st_at(src, i_sw) != sw) i_sw++;
    char extra[160];
    snprintf(extra, sizeof extra,
             ",\"shared.weight\":\"nowhere.safetensors\","
             "\"shared.weight\":\"model-0000%d-of-00002.safetensors\"",
             i_sw % 2 + 1);
    write_index(src, dir, extra); /* the bogus shard is overridden: never opened */
    s = st_open_dir(dir, err, sizeof err);
    CHECK_MSG(s != NULL, "%s", err);
    st_close(&s);
    /* "weight_map" itself twice: the last one */
    char path[256];
    snprintf(path, sizeof path, "%s/model.safetensors.index.json", dir);
    write_text(path, "{\"weight_map\":{\"x\":\"../etc\"},\"weight_map\":{}}");
    expect_dir_err(dir, "weight_map is empty", NULL);
    st_close(&src);
    st_rmdir(dir);
}

/* ---- other hostile directory contents ---- */

TEST_TIMEOUT(st_fifo_refused_not_waited_on, 20)
{
    /* open() of a FIFO blocks until a writer comes: it must be refused instead */
    const char *dir = st_tmpdir();
    char path[128], err[512] = "";
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    REQUIRE(mkfifo(path, 0600) == 0);
    st_set *s = st_open_dir(dir, err, sizeof err);
    CHECK(s == NULL);
    CHECK_MSG(strstr(err, "not a regular file") && strstr(err, path), "%s", err);
    st_rmdir(dir);
}

TEST_TIMEOUT(st_small_json_files_fifo_and_size, 20)
{
    /* config.json and the shard index as FIFOs: refused, not waited on */
    const char *dir = st_tmpdir();
    char path[128], err[512] = "";
    eng_config c;
    snprintf(path, sizeof path, "%s/config.json", dir);
    REQUIRE(mkfifo(path, 0600) == 0);
    CHECK(hf_config_load(path, &c, NULL, err, sizeof err) < 0);
    CHECK_MSG(strstr(err, "not a regular file") && strstr(err, path), "%s", err);
    snprintf(path, sizeof path, "%s/model.safetensors.index.json", dir);
    REQUIRE(mkfifo(path, 0600) == 0);
    st_set *s = st_open_dir(dir, err, sizeof err);
    CHECK(s == NULL);
    CHECK_MSG(strstr(err, "not a regular file") && strstr(err, path), "%s", err);
    st_rmdir(dir);
    /* config.json of exactly the 4 MiB limit loads; one byte more does not */
    size_t lim = (size_t)4 << 20;
    char *big = malloc(lim + 2);
    REQUIRE(big);
    memset(big, ' ', lim + 1);
    memcpy(big, "{\"model_type\":\"t5\"}", 19);
    big[lim] = '\0';
    eng_config c2;
    char e2[512] = "";
    CHECK_MSG(load_cfg_text(big, &c2, e2, sizeof e2) == 0, "%s", e2);
    big[lim] = ' ';
    big[lim + 1] = '\0';
    expect_cfg_err(big, "too large (limit 4194304 bytes)");
    free(big);
}

TEST(st_dir_path_too_long)
{
    /* long enough that ".../model.safetensors" fits in a path buffer (4096) and
     * ".../model.safetensors.index.json" does not: refused, not looked up cut short */
    char dir[4100];
    memset(dir, 'd', 4070);
    memcpy(dir, "/tmp/", 5);
    dir[4070] = '\0';
    char err[8192] = "";
    st_set *s = st_open_dir(dir, err, sizeof err);
    CHECK(s == NULL && strstr(err, "path too long"));
    dir[4090] = '\0';
    memset(dir + 4070, 'd', 20);
    s = st_open_dir(dir, err, sizeof err);
    CHECK(s == NULL && strstr(err, "path too long"));
}
