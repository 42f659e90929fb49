/* Tokenizer tests: golden parity with sentencepiece (tests/data/golden/tokenizer.json),
 * model loading failures, invalid input, buffer contracts, threads, the nlprun CLI. */
#include "tests/harness/harness.h"

#include <cjson/cJSON.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "engine/tok.h"

static char *tok_t_slurp(const char *path, size_t *len)
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

static tok_model *tok_t_load(void)
{
    char err[256] = "";
    tok_model *t = tok_load(th_data("t5/spiece.model"), err, sizeof err);
    REQUIRE_MSG(t != NULL, "tok_load: %s", err);
    return t;
}

static cJSON *tok_t_golden(void)
{
    char *js = tok_t_slurp(th_data("golden/tokenizer.json"), NULL);
    REQUIRE(js != NULL);
    cJSON *root = cJSON_Parse(js);
    free(js);
    REQUIRE(root != NULL);
    return root;
}

/* Text of a golden case, with its byte length (texts may hold NUL). */
static const char *tok_t_text(const cJSON *c, size_t *len)
{
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(c, "text");
    if (!cJSON_IsString(t)) return NULL;
    /* cJSON stores strings NUL-terminated; "x\u0000y" is cut at the NUL, so such
     * cases are rebuilt from their escaped form by the caller when needed. */
    *len = strlen(t->valuestring);
    return t->valuestring;
}

TEST(tok_golden_ids)
{
    tok_model *t = tok_t_load();
    cJSON *root = tok_t_golden();
    const cJSON *cases = cJSON_GetObjectItemCaseSensitive(root, "cases");
    REQUIRE(cJSON_IsArray(cases));
    int n = 0, bad = 0;
    int32_t ids[8192];
    const cJSON *c;
    cJSON_ArrayForEach (c, cases) {
        size_t len;
        const char *text = tok_t_text(c, &len);
        REQUIRE(text);
        const cJSON *want = cJSON_GetObjectItemCaseSensitive(c, "ids");
        int nw = cJSON_GetArraySize(want);
        /* cJSON cuts a string at an embedded NUL: the golden "x\0y" case is checked
         * in tok_nul_byte instead. */
        const cJSON *pieces = cJSON_GetObjectItemCaseSensitive(c, "pieces");
        if (strcmp(text, "x") == 0 && cJSON_GetArraySize(pieces) == 4) continue;
        int got = tok_encode(t, text, len, 1, ids, 8192);
        int same = got == nw;
        for (int i = 0; same && i < nw; i++) same = ids[i] == cJSON_GetArrayItem(want, i)->valueint;
        if (!same) {
            bad++;
            if (bad <= 5) {
                int i = 0;
                while (i < got && i < nw && ids[i] == cJSON_GetArrayItem(want, i)->valueint) i++;
                CHECK_MSG(0,
                          "case %d '%.60s': got %d ids, want %d; first diff at %d (got %d want %d)",
                          n, text, got, nw, i, i < got ? ids[i] : -1,
                          i < nw ? cJSON_GetArrayItem(want, i)->valueint : -1);
            }
        }
        n++;
    }
    CHECK_MSG(bad == 0, "%d of %d golden cases differ", bad, n);
    CHECK(n >= 500);
    cJSON_Delete(root);
    tok_free(&t);
    CHECK(t == NULL);
}

TEST(tok_golden_decode)
{
    tok_model *t = tok_t_load();
    cJSON *root = tok_t_golden();
    const cJSON *cases = cJSON_GetObjectItemCaseSensitive(root, "cases");
    int n = 0, bad = 0;
    int32_t ids[8192];
    static char out[1 << 16];
    const cJSON *c;
    cJSON_ArrayForEach (c, cases) {
        const cJSON *want = cJSON_GetObjectItemCaseSensitive(c, "ids");
        const char *dec = cJSON_GetObjectItemCaseSensitive(c, "decoded")->valuestring;
        int k = 0;
        const cJSON *id;
        cJSON_ArrayForEach (id, want) {
            int v = id->valueint;
            if (v == tok_pad_id(t) || v == tok_eos_id(t) || v == tok_unk_id(t) ||
                tok_is_sentinel(t, v))
                continue;
            if (k < 8192) ids[k++] = v;
        }
        int r = tok_decode(t, ids, k, out, sizeof out);
        if (r < 0 || strcmp(out, dec) != 0) {
            bad++;
            if (bad <= 5) CHECK_MSG(0, "case %d: decoded '%.80s', want '%.80s'", n, out, dec);
        } else {
            CHECK((size_t)r == strlen(dec));
        }
        n++;
    }
    CHECK_MSG(bad == 0, "%d of %d golden decodes differ", bad, n);
    cJSON_Delete(root);
    tok_free(&t);
}

TEST(tok_nul_byte)
{
    /* Golden: "x\0y" -> ▁ x <unk> y </s>; a NUL is an ordinary (unknown) character. */
    tok_model *t = tok_t_load();
    int32_t ids[16];
    int n = tok_encode(t, "x\0y", 3, 1, ids, 16);
    REQUIRE(n == 5);
    CHECK(ids[0] == 3 && ids[1] == 226 && ids[2] == 2 && ids[3] == 63 && ids[4] == 1);
    tok_free(&t);
}

TEST(tok_sentinels)
{
    tok_model *t = tok_t_load();
    CHECK(tok_vocab_size(t) == 32000);
    CHECK(tok_eos_id(t) == 1 && tok_pad_id(t) == 0 && tok_unk_id(t) == 2);
    CHECK(tok_is_sentinel(t, 32099) && tok_is_sentinel(t, 32000));
    CHECK(!tok_is_sentinel(t, 31999) && !tok_is_sentinel(t, 32100));
    CHECK(strcmp(tok_piece(t, 32099), "<extra_id_0>") == 0);
    CHECK(strcmp(tok_piece(t, 32000), "<extra_id_99>") == 0);
    CHECK(strcmp(tok_piece(t, 1), "</s>") == 0);
    CHECK(tok_piece(t, 32100) == NULL && tok_piece(t, -1) == NULL);

    int32_t ids[32];
    /* Not sentinels: out of range, leading zero, unterminated. */
    const char *plain[] = { "<extra_id_100>", "<extra_id_05>", "<extra_id_7", "<extra_id_>" };
    for (size_t i = 0; i < sizeof plain / sizeof plain[0]; i++) {
        int n = tok_encode(t, plain[i], strlen(plain[i]), 0, ids, 32);
        REQUIRE(n > 0 && n <= 32);
        for (int j = 0; j < n; j++) CHECK_MSG(ids[j] < 32000, "%s gave id %d", plain[i], ids[j]);
    }
    int n = tok_encode(t, "<extra_id_7><extra_id_42>", 25, 1, ids, 32);
    CHECK(n == 3 && ids[0] == 32092 && ids[1] == 32057 && ids[2] == 1);

    char out[128];
    int32_t d[] = { 37, 32099, 10681, 1, 0 };
    int r = tok_decode(t, d, 5, out, sizeof out);
    CHECK_MSG(r > 0 && strcmp(out, "The<extra_id_0> walks") == 0, "got '%s'", out);
    tok_free(&t);
}

TEST(tok_decode_contract)
{
    tok_model *t = tok_t_load();
    char out[64];
    int32_t ids[] = { 37, 1782, 2, 1 }; /* ▁The ▁dog <unk> </s> */
    int full = tok_decode(t, ids, 4, NULL, 0);
    CHECK(full > 0);
    int r = tok_decode(t, ids, 4, out, sizeof out);
    CHECK(r == full);
    CHECK_MSG(strcmp(out, "The dog \xE2\x81\x87 ") == 0, "got '%s'", out);
    /* Truncation keeps a terminated prefix and still returns the full length. */
    memset(out, 'Z', sizeof out);
    r = tok_decode(t, ids, 4, out, 4);
    CHECK(r == full && strcmp(out, "The") == 0);
    int32_t badid[] = { 5, 32100 };
    CHECK(tok_decode(t, badid, 2, out, sizeof out) == TOK_ERANGE);
    int32_t neg[] = { -1 };
    CHECK(tok_decode(t, neg, 1, out, sizeof out) == TOK_ERANGE);
    CHECK(tok_decode(t, ids, 0, out, sizeof out) == 0 && out[0] == '\0');
    tok_free(&t);
}

TEST(tok_encode_cap)
{
    tok_model *t = tok_t_load();
    const char *s = "Hello world, this is a test of the capacity contract.";
    int32_t big[64], small[3] = { -7, -7, -7 };
    int n = tok_encode(t, s, strlen(s), 1, big, 64);
    REQUIRE(n > 3 && n <= 64);
    int m = tok_encode(t, s, strlen(s), 1, small, 2);
    CHECK(m == n);
    CHECK(small[0] == big[0] && small[1] == big[1] && small[2] == -7);
    CHECK(tok_encode(t, s, strlen(s), 1, NULL, 0) == n);
    CHECK(tok_encode(t, s, strlen(s), 0, big, 64) == n - 1);
    tok_free(&t);
}

TEST(tok_invalid_utf8)
{
    tok_model *t = tok_t_load();
    int32_t ids[64];
    const char *bad[] = { "abc\xff",          "\xc3",     "\xe2\x82",
                          "\xed\xa0\x80",     "\xc0\xaf", "ok \xf4\x90\x80\x80",
                          "\xf0\x82\x82\xac", "\x80" };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        CHECK_MSG(tok_encode(t, bad[i], strlen(bad[i]), 1, ids, 64) == TOK_EINVAL,
                  "bad utf-8 #%zu accepted", i);
    CHECK(tok_encode(t, "\xf0\x9f\x98\x80", 4, 1, ids, 64) > 0);
    /* A text cut in the middle of a character is invalid too. */
    CHECK(tok_encode(t, "caf\xc3\xa9", 4, 1, ids, 64) == TOK_EINVAL);
    tok_free(&t);
}

TEST(tok_load_errors)
{
    char err[256] = "";
    CHECK(tok_load("/nonexistent/spiece.model", err, sizeof err) == NULL);
    CHECK_MSG(strstr(err, "/nonexistent/spiece.model") != NULL, "err: %s", err);

    size_t len;
    char *buf = tok_t_slurp(th_data("t5/spiece.model"), &len);
    REQUIRE(buf);
    /* Truncated anywhere: an error, never a half model. */
    int accepted = 0;
    for (size_t cut = 0; cut < len; cut += len / 97 + 1) {
        err[0] = '\0';
        tok_model *t = tok_load_mem(buf, cut, err, sizeof err);
        if (t) accepted++;
        else CHECK(err[0] != '\0');
        tok_free(&t);
    }
    CHECK_MSG(accepted == 0, "%d truncated models accepted", accepted);
    /* Garbage. */
    char junk[4096];
    unsigned x = 12345;
    for (size_t i = 0; i < sizeof junk; i++) junk[i] = (char)((x = x * 1103515245u + 12345u) >> 16);
    CHECK(tok_load_mem(junk, sizeof junk, err, sizeof err) == NULL);
    /* The whole file loads from memory as from disk. */
    tok_model *t = tok_load_mem(buf, len, err, sizeof err);
    CHECK(t != NULL && tok_vocab_size(t) == 32000);
    tok_free(&t);
    free(buf);
}

struct tok_t_thr {
    const tok_model *t;
    const char *text;
    size_t len;
    int32_t *ids;
    int n;
};

static void *tok_t_worker(void *arg)
{
    struct tok_t_thr *w = arg;
    for (int r = 0; r < 20; r++) w->n = tok_encode(w->t, w->text, w->len, 1, w->ids, 1 << 16);
    return NULL;
}

TEST(tok_threads_and_long_input)
{
    tok_model *t = tok_t_load();
    /* ~2 MB of mixed text, encoded by 2 threads at once and by this one. */
    const char *unit = "Der Protest begann gegen 11:00 Uhr (UTC+1) — café naïve 日本語 x ";
    size_t ul = strlen(unit), reps = (2u << 20) / ul;
    char *text = malloc(ul * reps + 1);
    REQUIRE(text);
    for (size_t i = 0; i < reps; i++) memcpy(text + i * ul, unit, ul);
    size_t len = ul * reps;
    int32_t *ref = malloc(sizeof(int32_t) << 20);
    REQUIRE(ref);
    int n = tok_encode(t, text, len, 1, ref, 1 << 20);
    REQUIRE(n > 0 && n <= (1 << 20));
    /* The unit ends in a space, so the long text is the unit's ids repeated. */
    int32_t one[256];
    int k = tok_encode(t, unit, ul, 0, one, 256);
    REQUIRE(k > 0);
    CHECK_MSG((size_t)n == (size_t)k * reps + 1, "n=%d k=%d reps=%zu", n, k, reps);
    CHECK(memcmp(ref, one, (size_t)k * sizeof *one) == 0);

    struct tok_t_thr w[2];
    pthread_t th[2];
    for (int i = 0; i < 2; i++) {
        w[i] = (struct tok_t_thr){ t, text, len / 8, malloc(sizeof(int32_t) << 16), 0 };
        REQUIRE(w[i].ids);
        REQUIRE(pthread_create(&th[i], NULL, tok_t_worker, &w[i]) == 0);
    }
    int32_t *mine = malloc(sizeof(int32_t) << 16);
    int nm = tok_encode(t, text, len / 8, 1, mine, 1 << 16);
    for (int i = 0; i < 2; i++) {
        pthread_join(th[i], NULL);
        CHECK(w[i].n == nm);
        CHECK(memcmp(w[i].ids, mine, (size_t)(nm < (1 << 16) ? nm : (1 << 16)) * 4) == 0);
        free(w[i].ids);
    }
    free(mine);
    free(ref);
    free(text);
    tok_free(&t);
}

TEST(tok_nlprun_cli)
{
    char cmd[1024];
    snprintf(cmd, sizeof cmd,
             "printf 'Hello world\\n\\nThe <extra_id_0> walks\\n' | %s/nlprun tokenize "
             "--tokenizer %s",
             th_build(), th_data("t5/spiece.model"));
    FILE *p = popen(cmd, "r");
    REQUIRE(p);
    char line[3][256] = { "", "", "" };
    for (int i = 0; i < 3; i++)
        if (!fgets(line[i], sizeof line[i], p)) break;
    CHECK(pclose(p) == 0);
    CHECK_MSG(strcmp(line[0], "8774 296 1\n") == 0, "line 1: %s", line[0]);
    CHECK_MSG(strcmp(line[1], "1\n") == 0, "line 2: %s", line[1]);
    CHECK_MSG(strcmp(line[2], "37 32099 10681 1\n") == 0, "line 3: %s", line[2]);

    snprintf(cmd, sizeof cmd,
             "printf '8774 296 1\\n37,1782,32099\\n\\n' | %s/nlprun detokenize --tokenizer %s",
             th_build(), th_data("t5/spiece.model"));
    p = popen(cmd, "r");
    REQUIRE(p);
    for (int i = 0; i < 3; i++)
        if (!fgets(line[i], sizeof line[i], p)) line[i][0] = '\0';
    CHECK(pclose(p) == 0);
    CHECK_MSG(strcmp(line[0], "Hello world\n") == 0, "line 1: %s", line[0]);
    CHECK_MSG(strcmp(line[1], "The dog<extra_id_0>\n") == 0, "line 2: %s", line[1]);
    CHECK_MSG(strcmp(line[2], "\n") == 0, "line 3: %s", line[2]);

    /* Errors: missing tokenizer, bad id; exit codes 2 and 1. */
    snprintf(cmd, sizeof cmd, "%s/nlprun tokenize </dev/null 2>/dev/null", th_build());
    CHECK(WEXITSTATUS(system(cmd)) == 2);
    snprintf(cmd, sizeof cmd,
             "echo '5 99999' | %s/nlprun detokenize --tokenizer %s >/dev/null 2>&1", th_build(),
             th_data("t5/spiece.model"));
    CHECK(WEXITSTATUS(system(cmd)) == 1);
}

/* ---- parity with the sentencepiece library on a model with byte fallback,
 * user-defined and unused pieces (T5 has none), through Debian's spm_encode. ---- */

#include "proto/sentencepiece_model.pb-c.h"

/* Writes a variant of the T5 model: byte_fallback on with 256 <0xNN> pieces,
 * user-defined pieces, "▁the" unused. Returns the packed bytes (caller frees). */
static uint8_t *tok_t_variant(size_t *outlen)
{
    size_t len;
    char *buf = tok_t_slurp(th_data("t5/spiece.model"), &len);
    REQUIRE(buf);
    Sentencepiece__ModelProto *mp =
        sentencepiece__model_proto__unpack(NULL, len, (const uint8_t *)buf);
    REQUIRE(mp);
    static const char *user[] = { "<sep>", "xyz", "\xe2\x96\x81qq" };
    size_t nu = sizeof user / sizeof user[0];
    size_t n0 = mp->n_pieces, n1 = n0 + 256 + nu;
    Sentencepiece__ModelProto__SentencePiece **np = malloc(n1 * sizeof *np);
    Sentencepiece__ModelProto__SentencePiece *extra = calloc(256 + nu, sizeof *extra);
    static char names[256][8];
    REQUIRE(np && extra);
    memcpy(np, mp->pieces, n0 * sizeof *np);
    for (size_t i = 0; i < 256 + nu; i++) {
        Sentencepiece__ModelProto__SentencePiece init =
            SENTENCEPIECE__MODEL_PROTO__SENTENCE_PIECE__INIT;
        extra[i] = init;
        extra[i].has_type = 1;
        extra[i].has_score = 1;
        extra[i].score = 0.0f;
        if (i < 256) {
            snprintf(names[i], sizeof names[i], "<0x%02X>", (unsigned)i);
            extra[i].piece = names[i];
            extra[i].type = SENTENCEPIECE__MODEL_PROTO__SENTENCE_PIECE__TYPE__BYTE;
        } else {
            extra[i].piece = (char *)user[i - 256];
            extra[i].type = SENTENCEPIECE__MODEL_PROTO__SENTENCE_PIECE__TYPE__USER_DEFINED;
        }
        np[n0 + i] = &extra[i];
    }
    Sentencepiece__ModelProto__SentencePiece **old = mp->pieces;
    size_t oldn = mp->n_pieces;
    mp->pieces = np;
    mp->n_pieces = n1;
    REQUIRE(strcmp(np[8]->piece, "\xe2\x96\x81the") == 0);
    Sentencepiece__ModelProto__SentencePiece__Type oldtype = np[8]->type;
    np[8]->type = SENTENCEPIECE__MODEL_PROTO__SENTENCE_PIECE__TYPE__UNUSED;
    np[8]->has_type = 1;
    protobuf_c_boolean oldbf = mp->trainer_spec->byte_fallback;
    mp->trainer_spec->has_byte_fallback = 1;
    mp->trainer_spec->byte_fallback = 1;

    size_t plen = sentencepiece__model_proto__get_packed_size(mp);
    uint8_t *out = malloc(plen);
    REQUIRE(out);
    sentencepiece__model_proto__pack(mp, out);
    *outlen = plen;

    /* Restore what free_unpacked will walk. */
    np[8]->type = oldtype;
    mp->trainer_spec->byte_fallback = oldbf;
    mp->pieces = old;
    mp->n_pieces = oldn;
    sentencepiece__model_proto__free_unpacked(mp, NULL);
    free(np);
    free(extra);
    free(buf);
    return out;
}

TEST_TIMEOUT(tok_spm_parity_byte_fallback_user_defined, 120)
{
    size_t mlen;
    uint8_t *mbuf = tok_t_variant(&mlen);
    char err[256] = "";
    tok_model *t = tok_load_mem(mbuf, mlen, err, sizeof err);
    REQUIRE_MSG(t, "variant model: %s", err);
    CHECK(tok_vocab_size(t) == 32000 + 256 + 3);

    char mpath[] = "/tmp/nlp_tok_variant_XXXXXX";
    int fd = mkstemp(mpath);
    REQUIRE(fd >= 0);
    REQUIRE(write(fd, mbuf, mlen) == (ssize_t)mlen);
    close(fd);
    char tpath[] = "/tmp/nlp_tok_text_XXXXXX";
    fd = mkstemp(tpath);
    REQUIRE(fd >= 0);
    FILE *tf = fdopen(fd, "w");
    REQUIRE(tf);

    /* Texts: golden ones without sentinels or line breaks, plus user-defined cases. */
    cJSON *root = tok_t_golden();
    const char *extra[] = { "a<sep>b xyzxyz <sep> the theme",
                            "qq ▁qq xqq the",
                            "日本語 ok ĳ",
                            "Привет <sep>мир",
                            "the the",
                            "😀😀 emoji" };
    int ntext = 0;
    static const char *texts[1024];
    const cJSON *c;
    cJSON_ArrayForEach (c, cJSON_GetObjectItemCaseSensitive(root, "cases")) {
        const char *s = cJSON_GetObjectItemCaseSensitive(c, "text")->valuestring;
        if (strstr(s, "<extra_id_") || strpbrk(s, "\n\r") || ntext >= 1000) continue;
        texts[ntext++] = s;
    }
    for (size_t i = 0; i < sizeof extra / sizeof extra[0]; i++) texts[ntext++] = extra[i];
    for (int i = 0; i < ntext; i++) fprintf(tf, "%s\n", texts[i]);
    fclose(tf);

    char cmd[512];
    snprintf(cmd, sizeof cmd, "spm_encode --model %s --output_format=id < %s", mpath, tpath);
    FILE *p = popen(cmd, "r");
    REQUIRE(p);
    static char line[1 << 16];
    int32_t ids[8192];
    int i = 0, bad = 0, bytes_seen = 0, user_seen = 0;
    while (i < ntext && fgets(line, sizeof line, p)) {
        int n = tok_encode(t, texts[i], strlen(texts[i]), 0, ids, 8192);
        char mine[1 << 16];
        size_t o = 0;
        mine[0] = '\0';
        for (int k = 0; k < n && o < sizeof mine - 16; k++) {
            o += (size_t)snprintf(mine + o, sizeof mine - o, k ? " %d" : "%d", ids[k]);
            if (ids[k] >= 32000 && ids[k] < 32256) bytes_seen = 1;
            if (ids[k] >= 32256) user_seen = 1;
            CHECK(ids[k] != 8); /* unused piece never produced */
        }
        line[strcspn(line, "\n")] = '\0';
        if (strcmp(mine, line) != 0) {
            bad++;
            if (bad <= 3) CHECK_MSG(0, "'%.50s': ours [%.100s] spm [%.100s]", texts[i], mine, line);
        }
        i++;
    }
    CHECK(pclose(p) == 0);
    CHECK_MSG(i == ntext, "spm_encode gave %d lines for %d texts", i, ntext);
    CHECK_MSG(bad == 0, "%d of %d texts differ from spm_encode", bad, ntext);
    CHECK(bytes_seen && user_seen);

    /* Byte pieces decode back to the characters they spell. */
    int n = tok_encode(t, "日本語", strlen("日本語"), 0, ids, 64);
    char out[64];
    CHECK(n == 10); /* ▁ + 9 bytes */
    CHECK(tok_decode(t, ids, n, out, sizeof out) == 9 && strcmp(out, "日本語") == 0);
    int32_t broken[] = { 32000 + 0xE6, 32000 + 0x41 }; /* cut sequence, then 'A' */
    CHECK(tok_decode(t, broken, 2, out, sizeof out) == 4 && strcmp(out, "\xEF\xBF\xBD"
                                                                        "A") == 0);

    unlink(mpath);
    unlink(tpath);
    cJSON_Delete(root);
    tok_free(&t);
    free(mbuf);
}

TEST(tok_load_bad_charsmap_and_dir)
{
    char err[256] = "";
    CHECK(tok_load(th_data("t5"), err, sizeof err) == NULL);
    CHECK_MSG(strstr(err, "t5") != NULL, "err: %s", err);

    size_t len;
    char *buf = tok_t_slurp(th_data("t5/spiece.model"), &len);
    REQUIRE(buf);
    Sentencepiece__ModelProto *mp =
        sentencepiece__model_proto__unpack(NULL, len, (const uint8_t *)buf);
    REQUIRE(mp && mp->normalizer_spec && mp->normalizer_spec->precompiled_charsmap.len > 8);
    ProtobufCBinaryData *cm = &mp->normalizer_spec->precompiled_charsmap;
    uint8_t save[4];
    memcpy(save, cm->data, 4);
    static const uint8_t bad_sizes[][4] = { { 0xFF, 0xFF, 0xFF, 0x7F },
                                            { 3, 0, 0, 0 },
                                            { 0, 0, 0, 0 } };
    for (size_t i = 0; i < 3; i++) {
        memcpy(cm->data, bad_sizes[i], 4);
        size_t pl = sentencepiece__model_proto__get_packed_size(mp);
        uint8_t *pb = malloc(pl);
        REQUIRE(pb);
        sentencepiece__model_proto__pack(mp, pb);
        err[0] = '\0';
        tok_model *t = tok_load_mem(pb, pl, err, sizeof err);
        CHECK_MSG(t == NULL && strstr(err, "charsmap"), "bad trie size %zu: err '%s'", i, err);
        tok_free(&t);
        free(pb);
    }
    memcpy(cm->data, save, 4);
    /* A model without unk, and one that is not unigram. */
    Sentencepiece__ModelProto__SentencePiece__Type ut = mp->pieces[2]->type;
    mp->pieces[2]->type = SENTENCEPIECE__MODEL_PROTO__SENTENCE_PIECE__TYPE__CONTROL;
    size_t pl = sentencepiece__model_proto__get_packed_size(mp);
    uint8_t *pb = malloc(pl);
    REQUIRE(pb);
    sentencepiece__model_proto__pack(mp, pb);
    CHECK(tok_load_mem(pb, pl, err, sizeof err) == NULL && strstr(err, "unk"));
    mp->pieces[2]->type = ut;
    mp->trainer_spec->has_model_type = 1;
    mp->trainer_spec->model_type = SENTENCEPIECE__TRAINER_SPEC__MODEL_TYPE__WORD;
    free(pb);
    pl = sentencepiece__model_proto__get_packed_size(mp);
    pb = malloc(pl);
    REQUIRE(pb);
    sentencepiece__model_proto__pack(mp, pb);
    CHECK(tok_load_mem(pb, pl, err, sizeof err) == NULL && strstr(err, "unigram"));
    mp->trainer_spec->model_type = SENTENCEPIECE__TRAINER_SPEC__MODEL_TYPE__UNIGRAM;
    free(pb);
    sentencepiece__model_proto__free_unpacked(mp, NULL);
    free(buf);
}

/* Random id sequences (spaces, unk, pad, EOS, bytes, user-defined pieces mixed in)
 * decode exactly as spm_decode decodes them, on the byte-fallback variant model. */
TEST_TIMEOUT(tok_spm_decode_parity, 120)
{
    size_t mlen;
    uint8_t *mbuf = tok_t_variant(&mlen);
    char err[256] = "";
    tok_model *t = tok_load_mem(mbuf, mlen, err, sizeof err);
    REQUIRE_MSG(t, "%s", err);
    char mpath[] = "/tmp/nlp_tok_variant_XXXXXX";
    int fd = mkstemp(mpath);
    REQUIRE(fd >= 0);
    REQUIRE(write(fd, mbuf, mlen) == (ssize_t)mlen);
    close(fd);
    char ipath[] = "/tmp/nlp_tok_ids_XXXXXX";
    fd = mkstemp(ipath);
    REQUIRE(fd >= 0);
    FILE *f = fdopen(fd, "w");
    REQUIRE(f);

    enum { NSEQ = 2000, MAXL = 24 };
    static int32_t seq[NSEQ][MAXL];
    static int len[NSEQ];
    uint32_t x = 2024;
    for (int i = 0; i < NSEQ; i++) {
        x = x * 1103515245u + 12345u;
        len[i] = 1 + (int)((x >> 16) % MAXL);
        for (int k = 0; k < len[i]; k++) {
            x = x * 1103515245u + 12345u;
            uint32_t r = x >> 8, v;
            switch (r % 9) {
            case 0: v = r / 9 % 4; break; /* pad, EOS, unk, ▁ */
            case 1:
            case 2: v = 32000 + (r / 9) % 256; break;      /* byte pieces */
            case 3: v = 32000 + 0xE6 + (r / 9) % 3; break; /* lead bytes */
            case 4: v = 32000 + 0x80 + (r / 9) % 8; break; /* continuation bytes */
            case 5: v = 32256 + (r / 9) % 3; break;        /* user-defined */
            default: v = 4 + (r / 9) % 31996; break;       /* normal pieces */
            }
            if (v == 8) v = 9; /* the variant's unused piece: spm_decode shows it too */
            /* Bytes NUL, LF, CR would break the line-by-line comparison. */
            if (v == 32000 || v == 32000 + '\n' || v == 32000 + '\r') v = 32000 + 'A';
            seq[i][k] = (int32_t)v;
            fprintf(f, k ? " %u" : "%u", v);
        }
        fputc('\n', f);
    }
    fclose(f);

    char cmd[512];
    snprintf(cmd, sizeof cmd, "spm_decode --model %s --input_format=id < %s", mpath, ipath);
    FILE *p = popen(cmd, "r");
    REQUIRE(p);
    static char line[1 << 14], mine[1 << 14];
    int i = 0, bad = 0;
    while (i < NSEQ && fgets(line, sizeof line, p)) {
        line[strcspn(line, "\n")] = '\0';
        int r = tok_decode(t, seq[i], len[i], mine, sizeof mine);
        if (r < 0 || strcmp(mine, line) != 0) {
            bad++;
            if (bad <= 3) CHECK_MSG(0, "seq %d: ours '%s' spm '%s'", i, mine, line);
        }
        i++;
    }
    CHECK(pclose(p) == 0);
    CHECK_MSG(i == NSEQ, "spm_decode gave %d lines", i);
    CHECK_MSG(bad == 0, "%d of %d sequences decode differently", bad, NSEQ);
    unlink(mpath);
    unlink(ipath);
    tok_free(&t);
    free(mbuf);
}

/* The engine goldens' input_ids are the tokenizer's output too: they must agree. */
TEST(tok_golden_engine_inputs)
{
    tok_model *t = tok_t_load();
    const char *files[] = { "golden/tiny-t5.json", "golden/tiny-flan.json" };
    int checked = 0;
    for (int f = 0; f < 2; f++) {
        char *js = tok_t_slurp(th_data(files[f]), NULL);
        REQUIRE(js);
        cJSON *root = cJSON_Parse(js);
        free(js);
        REQUIRE(root);
        const cJSON *c;
        cJSON_ArrayForEach (c, cJSON_GetObjectItemCaseSensitive(root, "cases")) {
            const char *text = cJSON_GetObjectItemCaseSensitive(c, "text")->valuestring;
            const cJSON *want = cJSON_GetObjectItemCaseSensitive(c, "input_ids");
            int32_t ids[1024];
            int n = tok_encode(t, text, strlen(text), 1, ids, 1024);
            int same = n == cJSON_GetArraySize(want);
            for (int i = 0; same && i < n; i++)
                same = ids[i] == cJSON_GetArrayItem(want, i)->valueint;
            CHECK_MSG(same, "%s: '%.40s' differs", files[f], text);
            checked++;
        }
        cJSON_Delete(root);
    }
    CHECK(checked >= 2);
    tok_free(&t);
}

/* ---- the tokenizer interface: spans, word starts, special ids, directory dispatch ---- */

/* Checks tok_encode_spans against one array of golden/tok_spans.json (the sentencepiece
 * library's own ids and begin/end offsets). Returns the cases checked. */
static int tok_t_spans_cases(const tok_model *t, const cJSON *cases, const char *what)
{
    static int32_t ids[8192];
    static tok_span sp[8192];
    int n = 0, bad = 0;
    const cJSON *c;
    cJSON_ArrayForEach (c, cases) {
        const char *text = cJSON_GetObjectItemCaseSensitive(c, "text")->valuestring;
        const cJSON *wid = cJSON_GetObjectItemCaseSensitive(c, "ids");
        const cJSON *wsp = cJSON_GetObjectItemCaseSensitive(c, "spans");
        size_t len = strlen(text);
        int k = tok_encode_spans(t, text, len, 0, ids, sp, 8192);
        int same = k == cJSON_GetArraySize(wid) && k == cJSON_GetArraySize(wsp);
        int at = 0;
        for (; same && at < k; at++) {
            const cJSON *s = cJSON_GetArrayItem(wsp, at);
            same = ids[at] == cJSON_GetArrayItem(wid, at)->valueint &&
                   sp[at].begin == (size_t)cJSON_GetArrayItem(s, 0)->valueint &&
                   sp[at].end == (size_t)cJSON_GetArrayItem(s, 1)->valueint;
        }
        if (!same && ++bad <= 5)
            CHECK_MSG(0, "%s '%.50s': %d ids; first difference at %d: ours %d [%zu, %zu)", what,
                      text, k, at - 1, at > 0 ? ids[at - 1] : -1, at > 0 ? sp[at - 1].begin : 0,
                      at > 0 ? sp[at - 1].end : 0);
        /* What tok.h promises of any tokenizer: in the text, never backwards. */
        for (int i = 0; i < k; i++) {
            CHECK(sp[i].begin <= sp[i].end && sp[i].end <= len);
            if (i) CHECK(sp[i - 1].end <= sp[i].begin);
        }
        n++;
    }
    CHECK_MSG(bad == 0, "%s: %d of %d cases differ from the library's offsets", what, bad, n);
    return n;
}

TEST(tok_golden_spans)
{
    char *js = tok_t_slurp(th_data("golden/tok_spans.json"), NULL);
    REQUIRE(js);
    cJSON *root = cJSON_Parse(js);
    free(js);
    REQUIRE(root);
    tok_model *t = tok_t_load();
    CHECK(tok_t_spans_cases(t, cJSON_GetObjectItemCaseSensitive(root, "t5"), "t5") >= 500);
    tok_free(&t);

    /* Byte fallback (the last byte piece of a character holds its span) and
     * user-defined pieces. */
    size_t mlen;
    uint8_t *mbuf = tok_t_variant(&mlen);
    char err[256] = "";
    t = tok_load_mem(mbuf, mlen, err, sizeof err);
    REQUIRE_MSG(t, "variant model: %s", err);
    CHECK(tok_t_spans_cases(t, cJSON_GetObjectItemCaseSensitive(root, "variant"), "variant") >=
          500);
    tok_free(&t);
    free(mbuf);
    cJSON_Delete(root);
}

/* Spans with what the library does not see: sentinels, EOS, a short buffer. */
TEST(tok_spans_contract)
{
    tok_model *t = tok_t_load();
    const char *s = "The <extra_id_0> walks  ";
    size_t len = strlen(s);
    int32_t ids[16], plain[16];
    tok_span sp[16];
    int n = tok_encode_spans(t, s, len, TOK_ADD_SPECIAL, ids, sp, 16);
    REQUIRE(n == 4);
    CHECK(n == tok_encode(t, s, len, TOK_ADD_SPECIAL, plain, 16) &&
          !memcmp(ids, plain, sizeof *ids * 4));
    CHECK(ids[0] == 37 && sp[0].begin == 0 && sp[0].end == 3);     /* ▁The: "The" */
    CHECK(ids[1] == 32099 && sp[1].begin == 4 && sp[1].end == 16); /* the marker */
    /* ▁walks: a segment starts like a text, its leading space dropped, so the span
     * starts at the letter; trailing spaces are dropped too. EOS sits at the end. */
    CHECK_MSG(ids[2] == 10681 && sp[2].begin == 17 && sp[2].end == 22, "[%zu, %zu)", sp[2].begin,
              sp[2].end);
    /* Inside a segment, the space before a word is in the word's span. */
    n = tok_encode_spans(t, "Hello world", 11, 0, ids, sp, 16);
    CHECK(n == 2 && sp[0].begin == 0 && sp[0].end == 5 && sp[1].begin == 5 && sp[1].end == 11);
    CHECK(ids[3] == 1 && sp[3].begin == len && sp[3].end == len);

    /* A short buffer: the first cap ids and spans, the full count. */
    tok_span few[2] = { { 99, 99 }, { 99, 99 } };
    int32_t fid[2] = { -7, -7 };
    CHECK(tok_encode_spans(t, s, len, TOK_ADD_SPECIAL, fid, few, 1) == 4);
    CHECK(fid[0] == 37 && few[0].end == 3 && fid[1] == -7 && few[1].begin == 99);
    CHECK(tok_encode_spans(t, "\xff", 1, 0, ids, sp, 16) == TOK_EINVAL);
    CHECK(tok_encode_spans(t, "", 0, TOK_ADD_SPECIAL, ids, sp, 16) == 1 && sp[0].begin == 0);

    /* A run of unknown characters is one unk id spanning all of them. */
    const char *u = "a \xf0\x9f\x98\x80\xf0\x9f\x98\x80 b"; /* two emoji */
    n = tok_encode_spans(t, u, strlen(u), 0, ids, sp, 16);
    int unk = -1;
    for (int i = 0; i < n; i++)
        if (ids[i] == tok_unk_id(t)) unk = i;
    REQUIRE(unk >= 0);
    CHECK_MSG(sp[unk].begin == 2 && sp[unk].end == 10, "unk span [%zu, %zu)", sp[unk].begin,
              sp[unk].end);
    tok_free(&t);
}

/* tok_word_start is what qa computed from the pieces before it existed: a piece that
 * starts with U+2581. Sentinels, control pieces and ids out of range are not. */
TEST(tok_word_start_is_the_piece_rule)
{
    tok_model *t = tok_t_load();
    int starts = 0;
    for (int32_t id = -2; id < tok_vocab_size(t) + 102; id++) {
        const char *p = tok_piece(t, id);
        int want = p && !strncmp(p, "\xe2\x96\x81", 3);
        CHECK_MSG(tok_word_start(t, id) == want, "id %d '%s'", id, p ? p : "(none)");
        starts += want;
    }
    CHECK(starts > 10000);
    CHECK(!tok_word_start(t, tok_eos_id(t)) && !tok_word_start(t, 32099));
    CHECK(tok_word_start(t, 37) && !tok_word_start(t, 5)); /* ▁The, "." */
    tok_free(&t);
}

TEST(tok_special_ids_and_sentinels)
{
    tok_model *t = tok_t_load();
    CHECK(strcmp(tok_kind(t), "sentencepiece-unigram") == 0);
    CHECK(tok_bos_id(t) == -1);
    tok_special_ids sp = tok_specials(t);
    CHECK(sp.n_head == 0 && sp.n_tail == 1 && sp.tail[0] == tok_eos_id(t));
    CHECK(tok_sentinel_id(t, 0) == 32099 && tok_sentinel_id(t, 99) == 32000);
    CHECK(tok_sentinel_id(t, 100) == -1 && tok_sentinel_id(t, -1) == -1);
    for (int i = 0; i < 100; i++) CHECK(tok_is_sentinel(t, tok_sentinel_id(t, i)));
    /* TOK_ADD_SPECIAL is the text's ids with the head before and the tail after. */
    int32_t a[64], b[64];
    const char *s = "Specials go around the text.";
    int na = tok_encode(t, s, strlen(s), TOK_ADD_SPECIAL, a, 64);
    int nb = tok_encode(t, s, strlen(s), 0, b, 64);
    REQUIRE(na == nb + sp.n_head + sp.n_tail);
    CHECK(!memcmp(a + sp.n_head, b, sizeof *b * (size_t)nb));
    CHECK(a[na - 1] == sp.tail[0]);
    /* NULL model: harmless answers. */
    CHECK(tok_specials(NULL).n_tail == 0 && tok_sentinel_id(NULL, 0) == -1 &&
          !tok_word_start(NULL, 37) && tok_bos_id(NULL) == -1);
    tok_free(&t);
}

/* A scratch model directory; the caller removes it with tok_t_rmdir. */
static char *tok_t_mkdir(char *tmpl)
{
    char *d = mkdtemp(tmpl);
    REQUIRE(d);
    return d;
}

static void tok_t_put(const char *dir, const char *name, const void *buf, size_t len)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    REQUIRE(f);
    REQUIRE(fwrite(buf, 1, len, f) == len);
    fclose(f);
}

static void tok_t_rmdir(const char *dir)
{
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    CHECK(system(cmd) == 0);
}

TEST(tok_open_dir_dispatch)
{
    char err[512] = "";
    /* A directory with spiece.model: the SentencePiece tokenizer, as tok_load gives it. */
    tok_model *d = tok_open_dir(th_data("models/tiny-t5"), err, sizeof err);
    REQUIRE_MSG(d, "tok_open_dir: %s", err);
    tok_model *f = tok_t_load();
    CHECK(strcmp(tok_kind(d), "sentencepiece-unigram") == 0);
    CHECK(tok_vocab_size(d) == 32000 && tok_eos_id(d) == 1);
    int32_t a[64], b[64];
    const char *s = "Dispatch by the directory's files <extra_id_3>.";
    int na = tok_encode(d, s, strlen(s), TOK_ADD_SPECIAL, a, 64);
    CHECK(na > 0 && na == tok_encode(f, s, strlen(s), TOK_ADD_SPECIAL, b, 64) &&
          !memcmp(a, b, sizeof *a * (size_t)na));
    tok_free(&d);
    tok_free(&f);
    /* tok_open: a directory or a file. */
    d = tok_open(th_data("t5"), err, sizeof err);
    CHECK_MSG(d != NULL, "tok_open(dir): %s", err);
    tok_free(&d);
    d = tok_open(th_data("t5/spiece.model"), err, sizeof err);
    CHECK_MSG(d != NULL, "tok_open(file): %s", err);
    tok_free(&d);

    /* A directory with none of the known files: the error names it and what was
     * looked for. */
    char t1[] = "/tmp/nlp_tok_dir_XXXXXX";
    char *dir = tok_t_mkdir(t1);
    tok_t_put(dir, "config.json", "{}", 2);
    err[0] = '\0';
    CHECK(tok_open_dir(dir, err, sizeof err) == NULL);
    CHECK_MSG(strstr(err, dir) && strstr(err, "spiece.model") && strstr(err, "no tokenizer"),
              "err: %s", err);
    err[0] = '\0';
    CHECK(tok_open(dir, err, sizeof err) == NULL && strstr(err, "spiece.model"));

    /* A damaged spiece.model: the error names the file. */
    char junk[2048];
    unsigned x = 777;
    for (size_t i = 0; i < sizeof junk; i++) junk[i] = (char)((x = x * 1103515245u + 12345u) >> 16);
    tok_t_put(dir, "spiece.model", junk, sizeof junk);
    char want[600];
    snprintf(want, sizeof want, "%s/spiece.model", dir);
    err[0] = '\0';
    CHECK(tok_open_dir(dir, err, sizeof err) == NULL);
    CHECK_MSG(strstr(err, want) && strstr(err, "not a sentencepiece model"), "err: %s", err);
    /* Truncated, and empty. */
    size_t len;
    char *buf = tok_t_slurp(th_data("t5/spiece.model"), &len);
    REQUIRE(buf);
    tok_t_put(dir, "spiece.model", buf, len / 2);
    err[0] = '\0';
    CHECK(tok_open_dir(dir, err, sizeof err) == NULL);
    CHECK_MSG(strstr(err, want) != NULL, "err: %s", err);
    tok_t_put(dir, "spiece.model", "", 0);
    err[0] = '\0';
    CHECK(tok_open_dir(dir, err, sizeof err) == NULL);
    CHECK_MSG(strstr(err, want) && strstr(err, "empty"), "err: %s", err);
    free(buf);
    tok_t_rmdir(dir);

    /* No such directory; a file where a directory belongs. */
    err[0] = '\0';
    CHECK(tok_open_dir("/nonexistent/model", err, sizeof err) == NULL);
    CHECK_MSG(strstr(err, "/nonexistent/model") != NULL, "err: %s", err);
    err[0] = '\0';
    CHECK(tok_open_dir(th_data("t5/spiece.model"), err, sizeof err) == NULL);
    CHECK_MSG(strstr(err, "not a directory") != NULL, "err: %s", err);
    CHECK(tok_open_dir(NULL, err, sizeof err) == NULL);
}

/* nlprun tokenize / detokenize take a model directory too, with the same output. */
TEST(tok_nlprun_cli_dir)
{
    char cmd[1024], line[256] = "";
    snprintf(cmd, sizeof cmd, "echo 'Hello world' | %s/nlprun tokenize --tokenizer %s", th_build(),
             th_data("models/tiny-flan"));
    FILE *p = popen(cmd, "r");
    REQUIRE(p);
    if (!fgets(line, sizeof line, p)) line[0] = '\0';
    CHECK(pclose(p) == 0);
    CHECK_MSG(strcmp(line, "8774 296 1\n") == 0, "got: %s", line);
    snprintf(cmd, sizeof cmd, "echo '8774 296 1' | %s/nlprun detokenize --tokenizer %s", th_build(),
             th_data("models/tiny-flan"));
    p = popen(cmd, "r");
    REQUIRE(p);
    if (!fgets(line, sizeof line, p)) line[0] = '\0';
    CHECK(pclose(p) == 0);
    CHECK_MSG(strcmp(line, "Hello world\n") == 0, "got: %s", line);
    /* A directory without a tokenizer: exit 1, the reason on stderr. */
    snprintf(cmd, sizeof cmd, "%s/nlprun tokenize --tokenizer %s </dev/null 2>&1 >/dev/null",
             th_build(), th_data("golden"));
    p = popen(cmd, "r");
    REQUIRE(p);
    if (!fgets(line, sizeof line, p)) line[0] = '\0';
    CHECK(WEXITSTATUS(pclose(p)) == 1);
    CHECK_MSG(strstr(line, "spiece.model") != NULL, "stderr: %s", line);
}
