/* Placeholder so everything links before the engine lands. DELETE when engine files
 * implement engine/engine.h. */
#include "engine/engine.h"

#include <stdio.h>
#include <stdlib.h>

eng_model_params eng_model_default_params(void) { return (eng_model_params){ 0 }; }
eng_model *eng_model_load(const char *dir, const eng_model_params *p, char *err, size_t errlen)
{
    (void)p;
    snprintf(err, errlen, "%s: engine not implemented yet", dir);
    return NULL;
}
void eng_model_free(eng_model **model) { *model = NULL; }
const eng_config *eng_model_config(const eng_model *model) { (void)model; return NULL; }
eng_ctx_params eng_ctx_default_params(void)
{
    return (eng_ctx_params){ 64, 512, 256, 64, 32 };
}
eng_ctx *eng_ctx_new(const eng_model *model, const eng_ctx_params *p, char *err, size_t errlen)
{
    (void)model, (void)p;
    snprintf(err, errlen, "engine not implemented yet");
    return NULL;
}
void eng_ctx_free(eng_ctx **ctx) { *ctx = NULL; }
eng_gen_params eng_gen_default_params(void)
{
    return (eng_gen_params){ .max_new_tokens = 64, .num_beams = 1, .num_return_sequences = 1,
                             .length_penalty = 1.0f, .repetition_penalty = 1.0f,
                             .temperature = 1.0f, .top_p = 1.0f };
}
void eng_gen_result_clear(eng_gen_result *r) { free(r->storage); r->storage = NULL; r->n_hyps = 0; }
int eng_generate(eng_ctx *ctx, eng_gen_req *reqs, int n) { (void)ctx, (void)reqs, (void)n; return ENG_ENOSYS; }
int eng_score(eng_ctx *ctx, eng_score_req *reqs, int n) { (void)ctx, (void)reqs, (void)n; return ENG_ENOSYS; }
int eng_encode(eng_ctx *ctx, const int32_t *ids, int n_ids, float *out)
{
    (void)ctx, (void)ids, (void)n_ids, (void)out;
    return ENG_ENOSYS;
}
int eng_logits(eng_ctx *ctx, const int32_t *ids, int n_ids, const int32_t *dec_ids, int n_dec, float *out)
{
    (void)ctx, (void)ids, (void)n_ids, (void)dec_ids, (void)n_dec, (void)out;
    return ENG_ENOSYS;
}
int eng_relative_bucket(int rp, int bidirectional, int num_buckets, int max_distance)
{
    (void)rp, (void)bidirectional, (void)num_buckets, (void)max_distance;
    return ENG_ENOSYS;
}
const char *eng_strerror(int status) { (void)status; return "engine not implemented"; }
