/* tok_check_vocab: a tokenizer fits a checkpoint when the model has a row for every id
 * it can produce and no more rows than padding explains (issue 21). T5's spiece.model
 * (32100 ids with its sentinels) against vocabularies of several sizes. */
#include "engine/tok.h"
#include "tests/harness/harness.h"

#include <string.h>

TEST(tok_vocab_fits_checkpoint)
{
    char err[512];
    tok_model *t = tok_open(th_data("t5/spiece.model"), err, sizeof err);
    REQUIRE_MSG(t, "%s", err);
    CHECK(tok_max_id(t) == 32099);                          /* <extra_id_0>, the top sentinel */
    CHECK(tok_check_vocab(t, 32128, err, sizeof err) == 0); /* T5: 28 padding rows */
    CHECK(tok_check_vocab(t, 32100, err, sizeof err) == 0); /* exact */
    /* too few rows: ids past the table, both sizes named */
    err[0] = '\0';
    CHECK(tok_check_vocab(t, 128, err, sizeof err) == TOK_ERANGE);
    CHECK_MSG(strstr(err, "32100 ids") && strstr(err, "is 128"), "%s", err);
    CHECK(tok_check_vocab(t, 32099, err, sizeof err) == TOK_ERANGE); /* one short */
    /* far more rows than ids: another checkpoint's tokenizer (mT5's 250112) */
    err[0] = '\0';
    CHECK(tok_check_vocab(t, 250112, err, sizeof err) == TOK_ERANGE);
    CHECK_MSG(strstr(err, "32100 ids") && strstr(err, "250112"), "%s", err);
    CHECK(tok_check_vocab(t, 0, err, sizeof err) == TOK_ERANGE);
    tok_free(&t);
}
