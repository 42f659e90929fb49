/* Tasks on the model families (issue 15 "Tasks", issue 18): zero-shot classification on
 * tiny-bart-mnli against transformers' pipeline (tests/data/families/models/
 * tiny-bart-mnli/golden.json: scores within 1e-5), the pair ids built by the task's own
 * code from the golden's premise and hypothesis ids; HF's entailment/contradiction ids;
 * the order of decoding defaults (built-in < checkpoint < operator's file < request);
 * which tasks each family serves (UNSUPPORTED otherwise); Marian's one pair and NLLB's
 * codes in translate. The end-to-end side (daemon = nlprun) is
 * tests/scripts/families_e2e.sh. */
#include "common/common.h"
#include "engine/engine.h"
#include "engine/tok.h"
#include "tasks/task_int.h"
#include "tests/harness/harness.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define ZS_TOL 1e-5

/* Every zero-shot item: pair ids as the task builds them (BART's pair layout, read from
 * the real BART tokenizer) equal the pipeline's; eng_classify of all pairs of all items
 * in one batch; single- and multi-label scores within ZS_TOL of the golden. */
TEST_TIMEOUT(tasks_fam_zero_shot_golden, 300)
{
    char err[512];
    cJSON *gold = th_json("families/models/tiny-bart-mnli/golden.json");
    REQUIRE(gold);
    const cJSON *zs = cJSON_GetObjectItem(gold, "zero_shot");
    REQUIRE(zs);
    task_conf *conf = task_conf_default();
    REQUIRE(conf);
    CHECK(!strcmp(cJSON_GetObjectItem(zs, "hypothesis_template")->valuestring,
                  conf->hypothesis_template));
    task_conf_free(&conf);
    tok_model *tok = tok_open_dir(th_data("families/tokenizers/bart-bpe"), err, sizeof err);
    REQUIRE_MSG(tok, "%s", err);
    task_pair_layout lay;
    REQUIRE(task_pair_layout_of(tok, &lay) == 0);
    CHECK(lay.n_head == 1 && lay.n_mid == 2 && lay.n_tail == 1);

    eng_model *m = eng_model_load(th_data("families/models/tiny-bart-mnli"), NULL, err, sizeof err);
    REQUIRE_MSG(m, "%s", err);
    const eng_config *cfg = eng_model_config(m);
    int ent, con;
    REQUIRE(task_nli_ids(cfg, &ent, &con) == 0);
    CHECK(ent == cJSON_GetObjectItem(zs, "entailment_id")->valueint);
    CHECK(con == cJSON_GetObjectItem(zs, "contradiction_id")->valueint);
    eng_ctx *ctx = eng_ctx_new(m, NULL, err, sizeof err);
    REQUIRE_MSG(ctx, "%s", err);

    const cJSON *labels = cJSON_GetObjectItem(zs, "candidate_labels");
    const cJSON *hyps = cJSON_GetObjectItem(zs, "hypothesis_ids");
    int nl = cJSON_GetArraySize(labels), ni = cJSON_GetArraySize(cJSON_GetObjectItem(zs, "items"));
    REQUIRE(nl > 0 && nl <= 8 && ni > 0 && ni <= 8);
    static int32_t ids[64][128];
    static float logits[64][ENG_MAX_LABELS];
    eng_cls_req reqs[64];
    int nr = 0;
    const cJSON *item;
    cJSON_ArrayForEach (item, cJSON_GetObjectItem(zs, "items")) {
        int32_t prem[128], hyp[32], want[128];
        int np = th_ids(cJSON_GetObjectItem(item, "premise_ids"), prem, 128);
        int li = 0;
        const cJSON *pair;
        cJSON_ArrayForEach (pair, cJSON_GetObjectItem(item, "pairs")) {
            const char *label = cJSON_GetArrayItem(labels, li)->valuestring;
            int nh = th_ids(cJSON_GetObjectItem(hyps, label), hyp, 32);
            int nw = th_ids(cJSON_GetObjectItem(pair, "input_ids"), want, 128);
            int n = task_pair_ids(&lay, prem, np, hyp, nh, ids[nr]);
            CHECK_MSG(n == nw && !memcmp(ids[nr], want, (size_t)n * sizeof *want),
                      "item pair %s: ids differ from the pipeline's", label);
            reqs[nr] = (eng_cls_req){ .ids = ids[nr], .n_ids = n, .logits = logits[nr] };
            nr++;
            li++;
        }
        CHECK(li == nl);
    }
    REQUIRE(eng_classify(ctx, reqs, nr) == 0);
    double worst = 0;
    int r0 = 0;
    cJSON_ArrayForEach (item, cJSON_GetObjectItem(zs, "items")) {
        for (int k = 0; k < nl; k++) REQUIRE(reqs[r0 + k].status == 0);
        float flat[8 * ENG_MAX_LABELS];
        for (int k = 0; k < nl; k++)
            memcpy(flat + k * cfg->num_labels, logits[r0 + k], (size_t)cfg->num_labels * 4);
        for (int multi = 0; multi < 2; multi++) {
            double got[8], want[8];
            task_zs_scores(flat, nl, cfg->num_labels, ent, con, multi, got);
            const cJSON *w =
                cJSON_GetObjectItem(item, multi ? "multi_label_scores" : "single_label_scores");
            for (int k = 0; k < nl; k++) {
                want[k] = cJSON_GetArrayItem(w, k)->valuedouble;
                double d = fabs(got[k] - want[k]);
                if (d > worst) worst = d;
                CHECK_MSG(d <= ZS_TOL, "%s label %d: %.9f vs golden %.9f",
                          multi ? "multi" : "single", k, got[k], want[k]);
            }
        }
        /* One label: the multi-label rule, as the pipeline does. */
        double one;
        task_zs_scores(flat, 1, cfg->num_labels, ent, con, 0, &one);
        double e = flat[ent], c = flat[con];
        CHECK(fabs(one - exp(e) / (exp(e) + exp(c))) < 1e-12);
        r0 += nl;
    }
    /* Batched equals alone, bit for bit. */
    for (int k = 0; k < nr; k++) {
        float alone[ENG_MAX_LABELS];
        eng_cls_req one = { .ids = ids[k], .n_ids = reqs[k].n_ids, .logits = alone };
        REQUIRE(eng_classify(ctx, &one, 1) == 0 && one.status == 0);
        CHECK_MSG(!memcmp(alone, logits[k], (size_t)cfg->num_labels * sizeof *alone),
                  "pair %d: batched logits differ from alone", k);
    }
    printf("    zero-shot: %d items x %d labels, max |score - golden| = %.3g\n", ni, nl, worst);
    eng_ctx_free(&ctx);
    eng_model_free(&m);
    tok_free(&tok);
    cJSON_Delete(gold);
}

TEST(tasks_fam_nli_ids)
{
    eng_config c = { .num_labels = 3 };
    snprintf(c.labels[0], ENG_LABEL_LEN, "contradiction");
    snprintf(c.labels[1], ENG_LABEL_LEN, "neutral");
    snprintf(c.labels[2], ENG_LABEL_LEN, "entailment");
    int e, k;
    CHECK(task_nli_ids(&c, &e, &k) == 0 && e == 2 && k == 0);
    /* entailment first: contradiction is the last label (HF's -1) */
    snprintf(c.labels[0], ENG_LABEL_LEN, "ENTAILMENT");
    snprintf(c.labels[2], ENG_LABEL_LEN, "contradiction");
    CHECK(task_nli_ids(&c, &e, &k) == 0 && e == 0 && k == 2);
    snprintf(c.labels[0], ENG_LABEL_LEN, "positive");
    CHECK(task_nli_ids(&c, &e, &k) < 0);
    c.num_labels = 0;
    CHECK(task_nli_ids(&c, &e, &k) < 0);
}

/* Built-in defaults < the checkpoint's settings < keys the operator's file sets < the
 * request. */
TEST(tasks_fam_gen_params_layers)
{
    char path[] = "/tmp/nlp-tasks-fam-XXXXXX", err[512];
    int fd = mkstemp(path);
    REQUIRE(fd >= 0);
    const char *txt = "tasks = { summarize = { num_beams = 3; }; };\n";
    REQUIRE(write(fd, txt, strlen(txt)) == (ssize_t)strlen(txt));
    close(fd);
    task_conf *conf = task_conf_load(path, err, sizeof err);
    unlink(path);
    REQUIRE_MSG(conf, "%s", err);
    task_env env = { .conf = conf, .max_input_tokens = 512 };
    env.info.known = 1;
    env.info.gen = eng_gen_default_params();
    env.info.gen.num_beams = 5;
    env.info.gen.max_new_tokens = 50;
    env.info.gen.early_stopping = ENG_EARLY_TRUE;
    env.info.gen.forced_bos_token_id = 0;
    env.info.gen.forced_eos_token_id = 2;
    env.info.gen_set = ENG_GEN_SET_BEAMS | ENG_GEN_SET_MAX_NEW | ENG_GEN_SET_EARLY_STOPPING |
                       ENG_GEN_SET_FORCED_BOS | ENG_GEN_SET_FORCED_EOS;
    task_decode_opts o;
    task_decode_opts_unset(&o);
    eng_gen_params p;
    REQUIRE(task_gen_params_env(&env, TASK_SUMMARIZE, &o, &p, err, sizeof err) == 0);
    CHECK(p.num_beams == 3);       /* the operator's file over the checkpoint */
    CHECK(p.max_new_tokens == 50); /* the checkpoint over the built-in 128 */
    CHECK(p.min_new_tokens == 10); /* built-in: neither states it */
    CHECK(fabsf(p.length_penalty - 2.0f) < 1e-6);
    CHECK(p.early_stopping == ENG_EARLY_TRUE && p.forced_bos_token_id == 0 &&
          p.forced_eos_token_id == 2);
    o.num_beams = 2;
    o.max_new_tokens = 7;
    REQUIRE(task_gen_params_env(&env, TASK_SUMMARIZE, &o, &p, err, sizeof err) == 0);
    CHECK(p.num_beams == 2 && p.max_new_tokens == 7 && p.min_new_tokens == 7);
    /* A family other than T5: transformers' defaults beneath the checkpoint. */
    env.info.hf_base = 1;
    task_decode_opts_unset(&o);
    REQUIRE(task_gen_params_env(&env, TASK_SUMMARIZE, &o, &p, err, sizeof err) == 0);
    CHECK(p.num_beams == 3 && p.max_new_tokens == 50); /* the file, the checkpoint */
    CHECK(p.min_new_tokens == 0 && fabsf(p.length_penalty - 1.0f) < 1e-6 &&
          p.no_repeat_ngram_size == 0); /* HF's, not T5's 10, 2.0, 3 */
    env.info.gen_set = 0;
    REQUIRE(task_gen_params_env(&env, TASK_TRANSLATE, &o, &p, err, sizeof err) == 0);
    CHECK(p.num_beams == 1 && p.max_new_tokens == 128); /* NLLB: greedy, as HF */
    env.info.hf_base = 0;
    /* No checkpoint settings: exactly task_gen_params (T5 as before). */
    env.info.known = 0;
    task_decode_opts_unset(&o);
    eng_gen_params q;
    REQUIRE(task_gen_params_env(&env, TASK_TRANSLATE, &o, &p, err, sizeof err) == 0);
    REQUIRE(task_gen_params(conf, TASK_TRANSLATE, &o, &q, err, sizeof err) == 0);
    CHECK(!memcmp(&p, &q, sizeof p));
    task_conf_free(&conf);
}

static task_input input(task_kind kind, const char *text)
{
    task_input in = { .kind = kind, .text = text, .text_len = strlen(text) };
    task_decode_opts_unset(&in.opts);
    return in;
}

/* Which tasks each family serves; the others are TASK_EUNSUPPORTED, named. */
TEST(tasks_fam_served)
{
    char err[512], list[128];
    task_conf *conf = task_conf_default();
    tok_model *tok = tok_open_dir(th_data("families/tokenizers/bart-bpe"), err, sizeof err);
    REQUIRE(conf && tok);
    eng_config bart = { .model_type = "bart", .eos_token_id = 2 };
    task_env env = { .tok = tok, .model = &bart, .conf = conf, .max_input_tokens = 64 };
    CHECK(task_env_family(&env) == TASK_FAM_BART);
    task_served_list(&env, list, sizeof list);
    CHECK_MSG(!strcmp(list, "summarize classify"), "%s", list);
    task_input in = input(TASK_QA, "the cat sat.");
    in.question = "who?";
    task_doc doc;
    CHECK(task_prepare(&env, &in, &doc, err, sizeof err) == TASK_EUNSUPPORTED);
    CHECK_MSG(strstr(err, "qa: not supported") && strstr(err, "bart"), "%s", err);
    in = input(TASK_TEXT2TEXT, "the cat sat.");
    CHECK(task_prepare(&env, &in, &doc, err, sizeof err) == TASK_EUNSUPPORTED);
    /* BART reads the text as is: no "summarize: " */
    in = input(TASK_SUMMARIZE, "the cat sat.");
    REQUIRE(task_prepare(&env, &in, &doc, err, sizeof err) == 0);
    int32_t want[16];
    int nw = tok_encode(tok, "the cat sat.", 12, TOK_ADD_SPECIAL, want, 16);
    CHECK(doc.n_jobs == 1 && doc.jobs[0].n_ids == nw &&
          !memcmp(doc.jobs[0].ids, want, (size_t)nw * sizeof *want));
    task_doc_clear(&doc);
    /* An NLI head: classify only; a head without entailment: nothing. */
    eng_config nli = bart;
    nli.num_labels = 3;
    snprintf(nli.labels[2], ENG_LABEL_LEN, "entailment");
    env.model = &nli;
    task_served_list(&env, list, sizeof list);
    CHECK_MSG(!strcmp(list, "classify"), "%s", list);
    snprintf(nli.labels[2], ENG_LABEL_LEN, "positive");
    task_served_list(&env, list, sizeof list);
    CHECK_MSG(!strcmp(list, ""), "%s", list);
    /* T5 (and no model, as in the other task tests): everything */
    eng_config t5 = { .model_type = "t5" };
    env.model = &t5;
    task_served_list(&env, list, sizeof list);
    CHECK(!strcmp(list, "summarize translate classify qa text2text"));
    tok_free(&tok);
    task_conf_free(&conf);
}

/* NLI classify through task_prepare: one classify job per label, each the tokenizer's
 * pair of the text and "This example is LABEL."; an over-long text is cut, not the
 * hypothesis. */
TEST(tasks_fam_nli_jobs)
{
    char err[512];
    task_conf *conf = task_conf_default();
    tok_model *tok = tok_open_dir(th_data("families/tokenizers/bart-bpe"), err, sizeof err);
    REQUIRE(conf && tok);
    eng_config nli = { .model_type = "bart", .num_labels = 3 };
    snprintf(nli.labels[0], ENG_LABEL_LEN, "contradiction");
    snprintf(nli.labels[2], ENG_LABEL_LEN, "entailment");
    task_env env = { .tok = tok, .model = &nli, .conf = conf, .max_input_tokens = 512 };
    const char *labels[] = { "sports", " politics " };
    task_input in = input(TASK_CLASSIFY, "The game ended late.");
    in.labels = labels;
    in.n_labels = 2;
    task_doc doc;
    REQUIRE_MSG(task_prepare(&env, &in, &doc, err, sizeof err) == 0, "%s", err);
    REQUIRE(doc.n_jobs == 2);
    const char *hyp[] = { "This example is sports.", "This example is politics." };
    for (int i = 0; i < 2; i++) {
        int32_t want[64];
        int n = tok_encode_pair(tok, in.text, in.text_len, hyp[i], strlen(hyp[i]), TOK_ADD_SPECIAL,
                                want, NULL, 64);
        CHECK(doc.jobs[i].kind == TASK_JOB_CLASSIFY && doc.jobs[i].n_ids == n &&
              !memcmp(doc.jobs[i].ids, want, (size_t)n * sizeof *want));
        CHECK(doc.jobs[i].cls.ids == doc.jobs[i].ids && doc.jobs[i].cls.n_ids == n);
    }
    task_doc_clear(&doc);
    env.max_input_tokens = 12; /* the text is cut to fit beside each hypothesis */
    REQUIRE(task_prepare(&env, &in, &doc, err, sizeof err) == 0);
    CHECK(doc.truncated == 1 && doc.jobs[0].n_ids <= 12 && doc.jobs[1].n_ids <= 12);
    task_doc_clear(&doc);
    tok_free(&tok);
    task_conf_free(&conf);
}

/* Marian: one pair; another is TASK_EINVAL naming it. NLLB: the tokenizer's codes, the
 * source code first, the target forced as the first generated token. */
TEST(tasks_fam_translate_langs)
{
    char err[512];
    task_conf *conf = task_conf_default();
    tok_model *mt = tok_open_dir(th_data("families/tokenizers/marian-en-mg"), err, sizeof err);
    tok_model *nl = tok_open_dir(th_data("families/tokenizers/nllb-bpe"), err, sizeof err);
    REQUIRE(conf && mt && nl);
    eng_config marian = { .model_type = "marian" };
    task_env env = { .tok = mt, .model = &marian, .conf = conf, .max_input_tokens = 512 };
    env.info.known = 1;
    env.info.gen = eng_gen_default_params();
    snprintf(env.info.pair_src, sizeof env.info.pair_src, "en");
    snprintf(env.info.pair_tgt, sizeof env.info.pair_tgt, "mg");
    task_input in = input(TASK_TRANSLATE, "Hello there. How are you?");
    in.target_lang = "Malagasy";
    task_doc doc;
    REQUIRE_MSG(task_prepare(&env, &in, &doc, err, sizeof err) == 0, "%s", err);
    CHECK(doc.n_jobs == 2);
    int32_t want[32];
    int n = tok_encode(mt, "Hello there.", 12, TOK_ADD_SPECIAL, want, 32);
    CHECK(doc.jobs[0].n_ids == n && !memcmp(doc.jobs[0].ids, want, (size_t)n * sizeof *want));
    task_doc_clear(&doc);
    in.target_lang = "de";
    CHECK(task_prepare(&env, &in, &doc, err, sizeof err) == TASK_EINVAL);
    CHECK_MSG(strstr(err, "translates en to mg only"), "%s", err);
    in.target_lang = "mg";
    in.source_lang = "French";
    CHECK(task_prepare(&env, &in, &doc, err, sizeof err) == TASK_EINVAL);
    CHECK_MSG(strstr(err, "en to mg only, not from 'French'"), "%s", err);

    eng_config m2m = { .model_type = "m2m_100" };
    env = (task_env){ .tok = nl, .model = &m2m, .conf = conf, .max_input_tokens = 512 };
    env.info.known = 1;
    env.info.gen = eng_gen_default_params();
    CHECK(task_env_family(&env) == TASK_FAM_MANY);
    in = input(TASK_TRANSLATE, "Hello there.");
    in.source_lang = "fr";
    in.target_lang = "German";
    REQUIRE_MSG(task_prepare(&env, &in, &doc, err, sizeof err) == 0, "%s", err);
    CHECK(doc.jobs[0].params.forced_bos_token_id == tok_lang_id(nl, "deu_Latn"));
    CHECK(doc.jobs[0].ids[0] == tok_lang_id(nl, "fra_Latn"));
    task_doc_clear(&doc);
    in.source_lang = NULL; /* tasks.translate.default_source "en" -> eng_Latn */
    REQUIRE(task_prepare(&env, &in, &doc, err, sizeof err) == 0);
    CHECK(doc.jobs[0].ids[0] == tok_lang_id(nl, "eng_Latn"));
    task_doc_clear(&doc);
    in.target_lang = "Klingon";
    CHECK(task_prepare(&env, &in, &doc, err, sizeof err) == TASK_EINVAL);
    CHECK_MSG(strstr(err, "unknown target language 'Klingon'") &&
                  strstr(err, "health reply lists them"),
              "%s", err);
    tok_free(&mt);
    tok_free(&nl);
    task_conf_free(&conf);
}

/* A Marian model with several targets (opus-mt-en-ROMANCE): the target's >>xx<< token
 * before each sentence, in the form the vocabulary has (here ISO 639-3 "fra"); a target
 * it has no token for is refused naming the pair. */
TEST(tasks_fam_marian_multi_target)
{
    char dir[] = "/tmp/nlp-marian-multi-XXXXXX", path[512], err[512];
    REQUIRE(mkdtemp(dir));
    char *voc;
    size_t n;
    REQUIRE(cm_read_file(th_data("families/tokenizers/marian-en-mg/vocab.json"), 16 << 20, &voc,
                         &n) == 0);
    cJSON *v = cJSON_ParseWithLength(voc, n);
    free(voc);
    REQUIRE(v);
    int code_id = cJSON_GetArraySize(v);
    cJSON_AddNumberToObject(v, ">>fra<<", code_id);
    char *s = cJSON_PrintUnformatted(v);
    cJSON_Delete(v);
    snprintf(path, sizeof path, "%s/vocab.json", dir);
    FILE *f = fopen(path, "w");
    REQUIRE(f && s);
    fputs(s, f);
    fclose(f);
    free(s);
    const char *spm[] = { "source.spm", "target.spm" };
    for (int i = 0; i < 2; i++) {
        char from[512];
        snprintf(from, sizeof from, "%s", th_data("families/tokenizers/marian-en-mg/"));
        strncat(from, spm[i], sizeof from - strlen(from) - 1);
        snprintf(path, sizeof path, "%s/%s", dir, spm[i]);
        if (from[0] != '/') {
            char abs[1024], cwd[512];
            REQUIRE(getcwd(cwd, sizeof cwd));
            snprintf(abs, sizeof abs, "%s/%s", cwd, from);
            REQUIRE(symlink(abs, path) == 0);
        } else {
            REQUIRE(symlink(from, path) == 0);
        }
    }
    tok_model *tok = tok_open_dir(dir, err, sizeof err);
    REQUIRE_MSG(tok, "%s", err);
    task_conf *conf = task_conf_default();
    eng_config marian = { .model_type = "marian" };
    task_env env = { .tok = tok, .model = &marian, .conf = conf, .max_input_tokens = 512 };
    env.info.known = 1;
    env.info.gen = eng_gen_default_params();
    snprintf(env.info.pair_src, sizeof env.info.pair_src, "en");
    snprintf(env.info.pair_tgt, sizeof env.info.pair_tgt, "ROMANCE");
    task_input in = input(TASK_TRANSLATE, "Hello there. How are you?");
    in.target_lang = "French";
    task_doc doc;
    REQUIRE_MSG(task_prepare(&env, &in, &doc, err, sizeof err) == 0, "%s", err);
    CHECK(doc.n_jobs == 2);
    for (int i = 0; i < doc.n_jobs; i++)
        CHECK_MSG(doc.jobs[i].ids[0] == code_id, "sentence %d starts with %d", i,
                  doc.jobs[i].ids[0]);
    task_doc_clear(&doc);
    in.target_lang = "de";
    CHECK(task_prepare(&env, &in, &doc, err, sizeof err) == TASK_EINVAL);
    CHECK_MSG(strstr(err, "translates en to ROMANCE only, not to 'de'"), "%s", err);
    tok_free(&tok);
    task_conf_free(&conf);
    for (int i = 0; i < 2; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, spm[i]);
        unlink(path);
    }
    snprintf(path, sizeof path, "%s/vocab.json", dir);
    unlink(path);
    rmdir(dir);
}
