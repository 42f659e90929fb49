/* Tokenizers of the BART and Marian families against transformers' slow tokenizers
 * (tests/data/families/tokenizers/NAME.golden.json, copied from shared/data/families): every
 * golden case's ids (and Marian's target-side ids), tokens, decoded text with and without
 * clean-up; pairs; spans; long words; directory dispatch and hostile files. */
#include "tests/harness/harness.h"

#include <cjson/cJSON.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "engine/tok.h"

#define TF_MAX_IDS 8192

static char *tf_slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)n + 1);
    if (buf && fread(buf, 1, (size_t)n, f) != (size_t)n) {
        free(buf);
        buf = NULL;
    }
    if (buf) buf[n] = '\0';
    fclose(f);
    if (len) *len = (size_t)n;
    return buf;
}

static tok_model *tf_open(const char *rel)
{
    char err[512] = "";
    tok_model *t = tok_open_dir(th_data(rel), err, sizeof err);
    REQUIRE_MSG(t != NULL, "tok_open_dir(%s): %s", rel, err);
    return t;
}

/* The golden file; cJSON ends strings at a NUL, so "\u0000" is read as U+E000 (which no
 * case holds) and tf_str turns that back into a NUL byte. */
static cJSON *tf_golden(const char *rel)
{
    char *js = tf_slurp(th_data(rel), NULL);
    REQUIRE_MSG(js != NULL, "cannot read %s", rel);
    for (char *p = js; (p = strstr(p, "\\u0000")) != NULL; p += 6) memcpy(p + 2, "E000", 4);
    cJSON *root = cJSON_Parse(js);
    free(js);
    REQUIRE(root != NULL);
    return root;
}

/* 1 if the n ids equal the JSON array want. */
static int tf_ids_equal(const int32_t *ids, int n, const cJSON *want)
{
    if (!cJSON_IsArray(want) || cJSON_GetArraySize(want) != n) return 0;
    int i = 0;
    const cJSON *v;
    cJSON_ArrayForEach (v, want) {
        if (!cJSON_IsNumber(v) || v->valueint != ids[i]) return 0;
        i++;
    }
    return 1;
}

/* c[key] with U+E000 back to NUL, in buf (static per slot); its length in *len. */
static const char *tf_str(const cJSON *c, const char *key, int slot, size_t *len)
{
    static char buf[2][1 << 16];
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(c, key);
    REQUIRE(cJSON_IsString(j));
    const char *s = j->valuestring;
    size_t n = 0;
    while (*s && n < sizeof buf[slot] - 1) {
        if (!memcmp(s, "\xEE\x80\x80", 3)) {
            buf[slot][n++] = '\0';
            s += 3;
        } else {
            buf[slot][n++] = *s++;
        }
    }
    buf[slot][n] = '\0';
    *len = n;
    return buf[slot];
}

static int tf_ids_from(const cJSON *arr, int32_t *ids, int cap)
{
    int n = 0;
    const cJSON *v;
    cJSON_ArrayForEach (v, arr) {
        if (n < cap) ids[n] = v->valueint;
        n++;
    }
    return n;
}

/* Spans of an encoding: inside the text, never backwards, at character starts. */
static int tf_spans_sane(const char *text, size_t len, const tok_span *sp, int n)
{
    for (int i = 0; i < n; i++) {
        size_t b = sp[i].begin, e = sp[i].end;
        if (b > e || e > len || (i && sp[i - 1].end > b)) return 0;
        if ((b < len && (text[b] & 0xC0) == 0x80) || (e < len && (text[e] & 0xC0) == 0x80))
            return 0;
    }
    return 1;
}

struct tf_counts {
    int cases, ids, target_ids, tokens, decoded, no_cleanup, spans;
};

/* Runs every case of a golden file; `target` also checks target_ids (Marian). */
static struct tf_counts tf_run_golden(const tok_model *t, const char *rel, int target)
{
    cJSON *root = tf_golden(rel);
    const cJSON *cases = cJSON_GetObjectItemCaseSensitive(root, "cases");
    REQUIRE(cJSON_IsArray(cases));
    struct tf_counts k = { 0 };
    static int32_t ids[TF_MAX_IDS], sids[TF_MAX_IDS];
    static tok_span sp[TF_MAX_IDS];
    static char out[1 << 16];
    const cJSON *c;
    cJSON_ArrayForEach (c, cases) {
        size_t len, dl;
        const char *text = tf_str(c, "text", 0, &len);
        k.cases++;
        int n = tok_encode(t, text, len, TOK_ADD_SPECIAL, ids, TF_MAX_IDS);
        const cJSON *want = cJSON_GetObjectItemCaseSensitive(c, "ids");
        if (n >= 0 && n <= TF_MAX_IDS && tf_ids_equal(ids, n, want)) k.ids++;
        else CHECK_MSG(0, "%s case %d ids differ (got %d ids): %.60s", rel, k.cases - 1, n, text);

        if (tok_encode_spans(t, text, len, TOK_ADD_SPECIAL, sids, sp, TF_MAX_IDS) == n && n >= 0 &&
            !memcmp(sids, ids, (size_t)n * sizeof *ids) && tf_spans_sane(text, len, sp, n))
            k.spans++;
        else CHECK_MSG(0, "%s case %d: spans", rel, k.cases - 1);

        if (target) {
            want = cJSON_GetObjectItemCaseSensitive(c, "target_ids");
            int m = tok_encode(t, text, len, TOK_ADD_SPECIAL | TOK_TARGET, ids, TF_MAX_IDS);
            if (m >= 0 && m <= TF_MAX_IDS && tf_ids_equal(ids, m, want)) k.target_ids++;
            else CHECK_MSG(0, "%s case %d target_ids differ: %.60s", rel, k.cases - 1, text);
        }

        /* Decoding starts from the golden ids. */
        int nd = tf_ids_from(cJSON_GetObjectItemCaseSensitive(c, "ids"), ids, TF_MAX_IDS);
        const cJSON *toks = cJSON_GetObjectItemCaseSensitive(c, "tokens");
        if (toks) {
            int i = 0, ok = cJSON_GetArraySize(toks) == nd;
            const cJSON *s;
            cJSON_ArrayForEach (s, toks) {
                const char *p = i < nd ? tok_piece(t, ids[i]) : NULL;
                ok = ok && p && !strcmp(p, s->valuestring);
                i++;
            }
            if (ok) k.tokens++;
            else CHECK_MSG(0, "%s case %d tokens differ", rel, k.cases - 1);
        }
        const char *d = tf_str(c, "decoded", 1, &dl);
        int r = tok_decode_flags(t, ids, nd, TOK_DECODE_CLEANUP, out, sizeof out);
        if (r >= 0 && (size_t)r == dl && !memcmp(out, d, dl)) k.decoded++;
        else CHECK_MSG(0, "%s case %d decoded: got '%.60s' want '%.60s'", rel, k.cases - 1, out, d);
        d = tf_str(c, "decoded_no_cleanup", 1, &dl);
        r = tok_decode(t, ids, nd, out, sizeof out);
        if (r >= 0 && (size_t)r == dl && !memcmp(out, d, dl)) k.no_cleanup++;
        else
            CHECK_MSG(0, "%s case %d decoded_no_cleanup: got '%.60s' want '%.60s'", rel,
                      k.cases - 1, out, d);
    }
    cJSON_Delete(root);
    return k;
}

TEST_TIMEOUT(tok_bpe_golden, 120)
{
    tok_model *t = tf_open("families/tokenizers/bart-bpe");
    CHECK(!strcmp(tok_kind(t), "bpe-bytelevel"));
    CHECK(tok_vocab_size(t) == 50265);
    CHECK(tok_bos_id(t) == 0 && tok_pad_id(t) == 1 && tok_eos_id(t) == 2 && tok_unk_id(t) == 3);
    struct tf_counts k = tf_run_golden(t, "families/tokenizers/bart-bpe.golden.json", 0);
    printf("  bart-bpe: %d cases: ids %d, tokens %d, decoded %d, decoded_no_cleanup %d, "
           "spans %d\n",
           k.cases, k.ids, k.tokens, k.decoded, k.no_cleanup, k.spans);
    CHECK(k.cases == 585);
    CHECK(k.ids == k.cases && k.tokens == k.cases && k.decoded == k.cases &&
          k.no_cleanup == k.cases && k.spans == k.cases);
    tok_free(&t);
}

TEST_TIMEOUT(tok_marian_golden, 120)
{
    tok_model *t = tf_open("families/tokenizers/marian-en-mg");
    CHECK(!strcmp(tok_kind(t), "marian"));
    CHECK(tok_vocab_size(t) == 54688);
    CHECK(tok_eos_id(t) == 0 && tok_unk_id(t) == 1 && tok_pad_id(t) == 54687);
    CHECK(tok_bos_id(t) == -1);
    struct tf_counts k = tf_run_golden(t, "families/tokenizers/marian-en-mg.golden.json", 1);
    printf("  marian-en-mg: %d cases: ids %d, target_ids %d, decoded %d, "
           "decoded_no_cleanup %d, spans %d\n",
           k.cases, k.ids, k.target_ids, k.decoded, k.no_cleanup, k.spans);
    CHECK(k.cases == 585);
    CHECK(k.ids == k.cases && k.target_ids == k.cases && k.decoded == k.cases &&
          k.no_cleanup == k.cases && k.spans == k.cases);
    tok_free(&t);
}

/* Known spans: the space a word carries is its own, <mask> takes the spaces before it,
 * a character cut into byte tokens belongs to the last of them. */
TEST(tok_bpe_spans)
{
    tok_model *t = tf_open("families/tokenizers/bart-bpe");
    int32_t ids[32];
    tok_span sp[32];
    const char *s = "Hello world";
    int n = tok_encode_spans(t, s, strlen(s), TOK_ADD_SPECIAL, ids, sp, 32);
    REQUIRE(n == 4);
    CHECK(ids[0] == 0 && sp[0].begin == 0 && sp[0].end == 0);
    CHECK(ids[1] == 31414 && sp[1].begin == 0 && sp[1].end == 5);
    CHECK(ids[2] == 232 && sp[2].begin == 5 && sp[2].end == 11);
    CHECK(ids[3] == 2 && sp[3].begin == 11 && sp[3].end == 11);
    CHECK(tok_word_start(t, 232) && !tok_word_start(t, 31414) && !tok_word_start(t, 0));

    s = "Hello  <mask> world";
    n = tok_encode_spans(t, s, strlen(s), 0, ids, sp, 32);
    REQUIRE(n == 3);
    CHECK(ids[1] == 50264 && sp[1].begin == 5 && sp[1].end == 13);

    /* U+1F600 is four bytes; BPE cuts it into byte tokens. */
    s = "a \xF0\x9F\x98\x80";
    n = tok_encode_spans(t, s, strlen(s), 0, ids, sp, 32);
    REQUIRE(n >= 2 && n <= 32);
    CHECK(tf_spans_sane(s, strlen(s), sp, n));
    CHECK(sp[n - 1].end == strlen(s));
    tok_free(&t);
}

TEST(tok_pairs)
{
    int32_t a[64], b[64], p[160];
    tok_span sp[160];
    const char *x = "The cat sat.", *y = "This example is sports.";

    tok_model *t = tf_open("families/tokenizers/bart-bpe");
    int na = tok_encode(t, x, strlen(x), 0, a, 64);
    int nb = tok_encode(t, y, strlen(y), 0, b, 64);
    int n = tok_encode_pair(t, x, strlen(x), y, strlen(y), TOK_ADD_SPECIAL, p, sp, 160);
    REQUIRE(na > 0 && nb > 0 && n == na + nb + 4);
    /* <s> A </s></s> B </s> */
    CHECK(p[0] == 0 && !memcmp(p + 1, a, (size_t)na * sizeof *a));
    CHECK(p[na + 1] == 2 && p[na + 2] == 2);
    CHECK(!memcmp(p + na + 3, b, (size_t)nb * sizeof *b) && p[n - 1] == 2);
    CHECK(sp[na + 3].begin == strlen(x) && sp[n - 1].end == strlen(x) + strlen(y));
    /* Without specials: A B; a short buffer sees the same count. */
    CHECK(tok_encode_pair(t, x, strlen(x), y, strlen(y), 0, p, NULL, 160) == na + nb);
    CHECK(tok_encode_pair(t, x, strlen(x), y, strlen(y), TOK_ADD_SPECIAL, p, NULL, 2) == n);
    CHECK(tok_encode_pair(t, x, strlen(x), "\xff", 1, 0, p, NULL, 160) == TOK_EINVAL);
    tok_free(&t);

    t = tf_open("families/tokenizers/marian-en-mg");
    na = tok_encode(t, x, strlen(x), 0, a, 64);
    nb = tok_encode(t, y, strlen(y), 0, b, 64);
    n = tok_encode_pair(t, x, strlen(x), y, strlen(y), TOK_ADD_SPECIAL, p, NULL, 160);
    /* A B </s> */
    REQUIRE(n == na + nb + 1);
    CHECK(!memcmp(p, a, (size_t)na * sizeof *a) && !memcmp(p + na, b, (size_t)nb * sizeof *b));
    CHECK(p[n - 1] == 0);
    tok_free(&t);
}

/* Long words cost n log n: a 1 MB word of varied letters and 200 KB of one letter. */
TEST_TIMEOUT(tok_bpe_long_words, 60)
{
    tok_model *t = tf_open("families/tokenizers/bart-bpe");
    size_t n = 1 << 20;
    char *s = malloc(n);
    REQUIRE(s);
    uint32_t r = 12345;
    for (size_t i = 0; i < n; i++) {
        r = r * 1103515245u + 12345u;
        s[i] = (char)('a' + (r >> 16) % 26);
    }
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    int k = tok_encode(t, s, n, TOK_ADD_SPECIAL, NULL, 0);
    memset(s, 'x', 200000);
    int k2 = tok_encode(t, s, 200000, TOK_ADD_SPECIAL, NULL, 0);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double sec = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) * 1e-9;
    printf("  1 MB word -> %d ids, 200 KB 'x' -> %d ids: %.2f s\n", k, k2, sec);
    CHECK(k > 2 && k2 > 2);
    CHECK_MSG(sec < 20.0, "long words took %.1f s", sec);
    /* 'x' * 200000 is 'xxxxxxxx' tokens (42523) and the rest, as the golden 300 x's. */
    int32_t *ids = malloc((size_t)k2 * sizeof *ids);
    REQUIRE(ids);
    CHECK(tok_encode(t, s, 200000, 0, ids, k2) == k2 - 2);
    CHECK(ids[0] == 42523);
    free(ids);
    free(s);
    tok_free(&t);
}

TEST(tok_families_decode_contract)
{
    tok_model *t = tf_open("families/tokenizers/bart-bpe");
    const int32_t ids[] = { 0, 31414, 2156, 232, 2 }; /* <s> Hello Ġ, Ġworld </s> */
    char small[4], big[64];
    int n = tok_decode(t, ids, 5, big, sizeof big);
    CHECK_MSG(n == 13 && !strcmp(big, "Hello , world"), "%d '%s'", n, big);
    CHECK(tok_decode_flags(t, ids, 5, TOK_DECODE_CLEANUP, big, sizeof big) == 12);
    CHECK(!strcmp(big, "Hello, world"));
    CHECK(tok_decode_flags(t, ids, 5, TOK_DECODE_CLEANUP, small, sizeof small) == 12);
    CHECK(!strcmp(small, "Hel"));
    const int32_t bad[] = { 50265 };
    CHECK(tok_decode(t, bad, 1, big, sizeof big) == TOK_ERANGE);
    /* A lone continuation byte token decodes to U+FFFD, as Python's errors='replace'. */
    const int32_t lead[] = { 49585, 31414 }; /* "ð" (byte 0xF0 alone), Hello */
    CHECK(tok_decode(t, lead, 2, big, sizeof big) == 8 && !strcmp(big, "\xEF\xBF\xBDHello"));
    CHECK(tok_encode(t, "a\xC3", 2, 0, NULL, 0) == TOK_EINVAL);
    tok_free(&t);

    t = tf_open("families/tokenizers/marian-en-mg");
    const int32_t m[] = { 34291, 245, 0, 54687, 1 }; /* ▁Hello ▁world </s> <pad> <unk> */
    CHECK(tok_decode(t, m, 5, big, sizeof big) == 11 && !strcmp(big, "Hello world"));
    const int32_t mbad[] = { 54688 };
    CHECK(tok_decode(t, mbad, 1, big, sizeof big) == TOK_ERANGE);
    CHECK(!strcmp(tok_piece(t, 34291), "\xe2\x96\x81Hello") && tok_word_start(t, 34291));
    tok_free(&t);
}

/* ---- hostile files ---- */

static char *tf_mkdir(char *tmpl)
{
    char *d = mkdtemp(tmpl);
    REQUIRE(d);
    return d;
}

static void tf_put(const char *dir, const char *name, const void *buf, size_t len)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    REQUIRE(f);
    REQUIRE(fwrite(buf, 1, len, f) == len);
    fclose(f);
}

static void tf_copy(const char *dir, const char *name, const char *from_rel)
{
    size_t len;
    char *b = tf_slurp(th_data(from_rel), &len);
    REQUIRE_MSG(b, "cannot read %s", from_rel);
    tf_put(dir, name, b, len);
    free(b);
}

static void tf_rm(const char *dir)
{
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    CHECK(system(cmd) == 0);
}

/* tok_open_dir(dir) fails with an error holding every string in want[]. */
static void tf_expect_err(const char *dir, const char *const *want, int nwant)
{
    char err[512] = "";
    tok_model *t = tok_open_dir(dir, err, sizeof err);
    CHECK_MSG(t == NULL, "opened, expected an error with '%s'", want[0]);
    tok_free(&t);
    for (int i = 0; i < nwant; i++)
        CHECK_MSG(strstr(err, want[i]) != NULL, "error '%s' lacks '%s'", err, want[i]);
}

TEST(tok_bpe_hostile_files)
{
    char tmpl[] = "/tmp/tok_bpe_XXXXXX";
    char *d = tf_mkdir(tmpl);
    const char *merges = "#version: 0.2\n\xC4\xA0 t\n\xC4\xA0 a\nh e\n";
    tf_put(d, "merges.txt", merges, strlen(merges));

    /* vocab.json that is not a map */
    tf_put(d, "vocab.json", "[\"<s>\", \"</s>\"]", 15);
    tf_expect_err(d, (const char *const[]){ "vocab.json", "not a JSON object" }, 2);
    /* not JSON at all, ids that are not integers, a truncated file */
    tf_put(d, "vocab.json", "\x89PNG\r\n", 6);
    tf_expect_err(d, (const char *const[]){ "vocab.json", "not valid JSON" }, 2);
    const char *v = "{\"<s>\": 0, \"</s>\": 2, \"<unk>\": 3, \"a\": \"one\"}";
    tf_put(d, "vocab.json", v, strlen(v));
    tf_expect_err(d, (const char *const[]){ "vocab.json", "\"a\"", "not an integer" }, 3);
    v = "{\"<s>\": 0, \"</s>\": 2, \"<unk>\": 3, \"a\": 1.5}";
    tf_put(d, "vocab.json", v, strlen(v));
    tf_expect_err(d, (const char *const[]){ "vocab.json", "not an integer" }, 2);
    v = "{\"<s>\": 0, \"</s>\": 2, \"<unk>\": -3}";
    tf_put(d, "vocab.json", v, strlen(v));
    tf_expect_err(d, (const char *const[]){ "vocab.json", "<unk>" }, 2);
    v = "{\"<s>\": 0, \"</s>\": 2, \"<u";
    tf_put(d, "vocab.json", v, strlen(v));
    tf_expect_err(d, (const char *const[]){ "vocab.json" }, 1);
    v = "{\"<s>\": 0, \"</s>\": 2, \"a\": 3}";
    tf_put(d, "vocab.json", v, strlen(v));
    tf_expect_err(d, (const char *const[]){ "vocab.json", "<unk>" }, 2);

    /* A good vocab.json, then merges with bad lines. */
    v = "{\"<s>\": 0, \"<pad>\": 1, \"</s>\": 2, \"<unk>\": 3, \"h\": 4, \"e\": 5, \"he\": 6}";
    tf_put(d, "vocab.json", v, strlen(v));
    char err[512] = "";
    tok_model *t = tok_open_dir(d, err, sizeof err);
    CHECK_MSG(t != NULL, "small model: %s", err);
    if (t) {
        int32_t ids[8];
        /* "he" merges; " " and "x" are not in this vocabulary: <unk>. */
        int n = tok_encode(t, "he x", 4, TOK_ADD_SPECIAL, ids, 8);
        CHECK_MSG(n == 5 && ids[0] == 0 && ids[1] == 6 && ids[2] == 3 && ids[3] == 3 && ids[4] == 2,
                  "n=%d", n);
        tok_free(&t);
    }
    const char *bad = "#version: 0.2\nh e\nx y z\n";
    tf_put(d, "merges.txt", bad, strlen(bad));
    tf_expect_err(d, (const char *const[]){ "merges.txt", "line 3" }, 2);
    bad = "#version: 0.2\nh e\nlonely\n";
    tf_put(d, "merges.txt", bad, strlen(bad));
    tf_expect_err(d, (const char *const[]){ "merges.txt", "line 3" }, 2);
    bad = "#version: 0.2\nh e\n\nh he\n";
    tf_put(d, "merges.txt", bad, strlen(bad));
    tf_expect_err(d, (const char *const[]){ "merges.txt", "line 3", "empty" }, 3);
    bad = "#version: 0.2\nh \xff\n";
    tf_put(d, "merges.txt", bad, strlen(bad));
    tf_expect_err(d, (const char *const[]){ "merges.txt", "line 2", "UTF-8" }, 3);

    /* merges.txt missing: no byte-level BPE here; a directory, not a file. */
    char path[600];
    snprintf(path, sizeof path, "%s/merges.txt", d);
    unlink(path);
    tf_expect_err(d, (const char *const[]){ "no tokenizer", "merges.txt" }, 2);
    mkdir(path, 0700);
    tf_expect_err(d, (const char *const[]){ "merges.txt" }, 1);
    tf_rm(d);
}

TEST(tok_marian_hostile_files)
{
    char tmpl[] = "/tmp/tok_mar_XXXXXX";
    char *d = tf_mkdir(tmpl);
    tf_copy(d, "vocab.json", "families/tokenizers/marian-en-mg/vocab.json");
    tf_copy(d, "target.spm", "families/tokenizers/marian-en-mg/target.spm");

    /* An spm that is not a model. */
    tf_put(d, "source.spm", "this is not a sentencepiece model\n", 34);
    tf_expect_err(d, (const char *const[]){ "source.spm", "not a sentencepiece model" }, 2);
    /* Truncated. */
    size_t len;
    char *b = tf_slurp(th_data("families/tokenizers/marian-en-mg/source.spm"), &len);
    REQUIRE(b);
    tf_put(d, "source.spm", b, len / 3);
    tf_expect_err(d, (const char *const[]){ "source.spm" }, 1);
    tf_put(d, "source.spm", b, len);
    tf_put(d, "target.spm", "", 0);
    tf_expect_err(d, (const char *const[]){ "target.spm" }, 1);
    tf_put(d, "target.spm", b, len);
    free(b);

    char err[512] = "";
    tok_model *t = tok_open_dir(d, err, sizeof err);
    CHECK_MSG(t != NULL && !strcmp(tok_kind(t), "marian"), "%s", err);
    tok_free(&t);

    /* vocab.json not a map, without <pad>, with a bad id. */
    tf_put(d, "vocab.json", "[1, 2, 3]", 9);
    tf_expect_err(d, (const char *const[]){ "vocab.json", "not a JSON object" }, 2);
    const char *v = "{\"</s>\": 0, \"<unk>\": 1}";
    tf_put(d, "vocab.json", v, strlen(v));
    tf_expect_err(d, (const char *const[]){ "vocab.json", "<pad>" }, 2);
    v = "{\"</s>\": 0, \"<unk>\": 1, \"<pad>\": true}";
    tf_put(d, "vocab.json", v, strlen(v));
    tf_expect_err(d, (const char *const[]){ "vocab.json", "<pad>", "not an integer" }, 3);

    /* source.spm missing: Marian is not there; with merges.txt absent too, nothing is. */
    char path[600];
    snprintf(path, sizeof path, "%s/source.spm", d);
    unlink(path);
    tf_expect_err(d, (const char *const[]){ "no tokenizer", "source.spm" }, 2);
    tf_rm(d);
}

/* Marian's language codes and special strings (the golden has them at the start; here
 * in the middle and with several). */
TEST(tok_marian_codes)
{
    tok_model *t = tf_open("families/tokenizers/marian-en-mg");
    int32_t a[64], b[64];
    tok_span sp[64];
    /* A code in the middle is removed (re.sub), not a token. */
    const char *x = "Hello >>fra<< world", *y = "Hello  world";
    int na = tok_encode(t, x, strlen(x), 0, a, 64);
    int nb = tok_encode(t, y, strlen(y), 0, b, 64);
    CHECK(na == nb && na > 0 && !memcmp(a, b, (size_t)na * sizeof *a));
    /* At the start: one token (<unk> here), `.+` greedy up to the line's last "<<". */
    x = ">>fra<< Hello >>deu<< world";
    na = tok_encode_spans(t, x, strlen(x), TOK_ADD_SPECIAL, a, sp, 64);
    REQUIRE(na == 3);
    CHECK(a[0] == 1 && sp[0].begin == 0 && sp[0].end == 21);
    CHECK(a[1] == 245 && a[2] == 0 && sp[1].end == strlen(x));
    /* A newline ends a code: the second one is removed, spans go through it. */
    x = ">>fra<< Hello\n>>deu<< world";
    y = " Hello\n world";
    na = tok_encode_spans(t, x, strlen(x), 0, a, sp, 64);
    nb = tok_encode(t, y, strlen(y), 0, b, 64);
    REQUIRE(na == nb + 1);
    CHECK(a[0] == 1 && !memcmp(a + 1, b, (size_t)nb * sizeof *b));
    CHECK(tf_spans_sane(x, strlen(x), sp, na));
    CHECK(sp[na - 1].end == strlen(x));
    /* <extra_id_0> is plain text to Marian. */
    x = "<extra_id_0>";
    na = tok_encode(t, x, strlen(x), 0, a, 64);
    CHECK(na > 1);
    tok_free(&t);
}
