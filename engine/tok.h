/* Tokenizers: text <-> token ids for a model, behind one interface.
 *
 * Tasks, the daemon and nlprun code against this header only. Which algorithm a model
 * uses is the model directory's business: tok_open_dir() looks at the files there and
 * picks the implementation (engine/tok.c holds the table: `spiece.model`, a SentencePiece
 * unigram model bit-exact with the sentencepiece library, engine/tok_spm.c; `vocab.json` +
 * `merges.txt`, byte-level BPE as transformers' BartTokenizer, engine/tok_bpe.c;
 * `source.spm` + `target.spm` + `vocab.json`, MarianTokenizer's, engine/tok_marian.c;
 * `sentencepiece.bpe.model` + `tokenizer_config.json`, SentencePiece BPE with the fairseq
 * ids and language codes of NLLB, M2M100 and mBART, engine/tok_spmbpe.c; a BPE .model
 * file alone is raw SentencePiece BPE, bit-exact with the library).
 * What a caller may rely on is what this header says, for every implementation:
 * - ids are 0 .. tok_vocab_size() - 1, then the model's extra ids (T5's sentinels);
 * - TOK_ADD_SPECIAL adds the ids the model's convention puts around one text
 *   (tok_specials(); T5: EOS after it);
 * - tok_word_start() says where a sequence may be cut without splitting a word;
 * - spans give the bytes of the input text each id stands for.
 * The decoder start id is the model's (eng_config), not the tokenizer's.
 *
 * A tok_model is immutable after loading: share it between threads freely.
 * Text is UTF-8; invalid UTF-8 is an error (TOK_EINVAL), never replaced.
 * SentencePiece (T5): `<extra_id_N>` in text becomes the sentinel id
 * (vocab_size + 99 - N, i.e. 32099 - N); `</s>`, `<pad>`, `<unk>` in text are plain text,
 * never control tokens. Byte-level BPE (BART): `<s>` `</s>` `<unk>` `<pad>` `<mask>` in
 * text are their ids; Marian: `</s>` `<unk>` `<pad>` are, `<s>` and `<mask>` are text;
 * NLLB, M2M100, mBART: `<s>` `</s>` `<pad>` `<unk>` `<mask>` and the language codes are.
 *
 * Return codes: >= 0 success (a count), < 0 one of enum tok_status. */
#ifndef NLP_TOK_H
#define NLP_TOK_H

#include <stddef.h>
#include <stdint.h>

typedef struct tok_model tok_model;

enum tok_status {
    TOK_OK = 0,
    TOK_EINVAL = -1, /* invalid UTF-8 in the input text */
    TOK_ENOMEM = -2,
    TOK_ERANGE = -3, /* an id outside the vocabulary (decode) */
};

/* Flags of tok_encode(). 1 is what the former `add_eos` argument meant for T5. */
enum tok_encode_flags {
    TOK_ADD_SPECIAL = 1, /* tok_specials()' head before the text's ids, tail after */
    TOK_TARGET = 2,      /* target-side text (what a seq2seq model is to produce): the
                            * target language's special ids (NLLB: [tgt_lang] text </s>);
                            * Marian: encoded with target.spm */
};

/* ---- loading ---- */

/* The tokenizer of a model directory (a Hugging Face checkpoint directory): the first
 * known tokenizer whose files are all there (today: spiece.model). On error, NULL is
 * returned and `err` says why: the file that is damaged, or the files looked for when
 * none is there. */
tok_model *tok_open_dir(const char *dir, char *err, size_t errlen);
/* One tokenizer file on its own (spiece.model, whatever its name). A directory is an
 * error here: see tok_open_dir / tok_open. */
tok_model *tok_load(const char *path, char *err, size_t errlen);
/* tok_open_dir() when path is a directory, else tok_load(). */
tok_model *tok_open(const char *path, char *err, size_t errlen);
/* tok_load() from bytes in memory (the caller keeps ownership of `buf`). */
tok_model *tok_load_mem(const void *buf, size_t len, char *err, size_t errlen);
/* Frees the model and NULLs the caller's pointer. NULL is fine. */
void tok_free(tok_model **tok);

/* What kind of tokenizer this is, for messages and reports ("sentencepiece-unigram"). */
const char *tok_kind(const tok_model *tok);

/* ---- encoding ---- */

/* The bytes [begin, end) of the input text one id stands for. Spans never go backwards
 * (begin <= end <= the next id's begin); the whitespace a word-start id carries belongs
 * to its span (" world" in "Hello world"); ids that stand for no input (EOS, a
 * SentencePiece dummy prefix alone, all but the last byte piece of a character) have an
 * empty span where they sit. SentencePiece: the begin/end sentencepiece's
 * EncodeAsImmutableProto gives. */
typedef struct tok_span {
    size_t begin, end;
} tok_span;

/* Encodes `len` bytes of `text` into ids (flags: enum tok_encode_flags).
 * Returns the number of ids the full encoding has; only the first `cap` are written
 * (so a return > cap means: call again with a bigger buffer). < 0 on error:
 * TOK_EINVAL for invalid UTF-8 (nothing useful is written). */
int tok_encode(const tok_model *tok, const char *text, size_t len, int flags, int32_t *ids,
               int cap);
/* The same, with the span of each id in spans[0..cap) (spans may be NULL). */
int tok_encode_spans(const tok_model *tok, const char *text, size_t len, int flags, int32_t *ids,
                     tok_span *spans, int cap);
/* Two texts as one sequence (a premise and a hypothesis for BART-MNLI), each encoded on
 * its own, as transformers' tokenizer(a, b) does. With TOK_ADD_SPECIAL: head, a's ids,
 * the model's pair separator, b's ids, tail (BART: <s> A </s></s> B </s>; Marian:
 * A B </s>; a kind without a separator, T5 today: A B </s>). Spans of b's ids count from
 * the start of a, as if b followed a in one buffer. Returns as tok_encode_spans. */
int tok_encode_pair(const tok_model *tok, const char *a, size_t alen, const char *b, size_t blen,
                    int flags, int32_t *ids, tok_span *spans, int cap);

#define TOK_MAX_SPECIALS 4
/* The ids TOK_ADD_SPECIAL puts before (head) and after (tail) the ids of one text, for
 * callers that build a sequence from separately encoded parts (qa's chunks). T5: no
 * head, tail = { EOS }. */
typedef struct tok_special_ids {
    int n_head, n_tail;
    int32_t head[TOK_MAX_SPECIALS], tail[TOK_MAX_SPECIALS];
} tok_special_ids;
tok_special_ids tok_specials(const tok_model *tok);

/* 1 if the id starts a word (a new word begins with its text, so a sequence may be cut
 * just before it without splitting a word; SentencePiece: the piece begins with the
 * escaped space), 0 otherwise: inside a word, special ids, sentinels, unknown ids. */
int tok_word_start(const tok_model *tok, int32_t id);

/* ---- languages (many-to-many translation: NLLB-200, M2M100, mBART-50) ----
 *
 * Such a tokenizer puts a language code id around each text: [src_lang] text </s> for
 * the source side, [tgt_lang] text </s> for target-side text (TOK_TARGET); NLLB's
 * legacy_behaviour and mBART-cc25 put it last: text </s> [lang]. The translate task asks
 * which languages the model has (tok_n_langs, tok_lang_code; engine/langs.h maps what
 * users write to one of them) and passes the ids it wants per call (tok_encode_opts);
 * the model stays immutable. Language codes in a text are their ids too; tok_decode
 * drops them with the other special ids and unk, as transformers' decode(ids,
 * skip_special_tokens=True) does (TOK_DECODE_CLEANUP adds its clean-up). */

/* Number of language codes (0 for a tokenizer without them, e.g. T5). */
int tok_n_langs(const tok_model *tok);
/* Code i as the model writes it ("deu_Latn", M2M100's "__de__"), NULL outside
 * 0 .. tok_n_langs() - 1. Valid while the model is. */
const char *tok_lang_code(const tok_model *tok, int i);
/* Token id of a language code (exact; for M2M100 "de" also finds "__de__"), -1 when the
 * model has no such code. */
int32_t tok_lang_id(const tok_model *tok, const char *code);
/* The language id used when a call asks for none: the tokenizer config's src_lang (else
 * the tokenizer's own default, NLLB's eng_Latn) or, with target = 1, its tgt_lang.
 * -1 when there is none. */
int32_t tok_lang_default(const tok_model *tok, int target);

/* Per-call encoding options. */
typedef struct tok_encode_opts {
    int flags;        /* enum tok_encode_flags */
    int32_t src_lang; /* id of the source language code (tok_lang_id); -1: default */
    int32_t tgt_lang; /* the same for TOK_TARGET text */
} tok_encode_opts;

/* { TOK_ADD_SPECIAL, -1, -1 }: what tok_encode(..., TOK_ADD_SPECIAL, ...) does. */
tok_encode_opts tok_encode_default_opts(void);
/* tok_encode_spans with options (opts NULL: the defaults). A language id that is not one
 * of the model's codes is TOK_ERANGE; without a language (none asked, no default) no
 * code is put. For a tokenizer without languages the ids are ignored. */
int tok_encode_opt(const tok_model *tok, const char *text, size_t len, const tok_encode_opts *opts,
                   int32_t *ids, tok_span *spans, int cap);
/* The head and tail ids tok_encode_opt adds for these options (tok_specials() is this
 * for the defaults). */
tok_special_ids tok_specials_opt(const tok_model *tok, const tok_encode_opts *opts);

/* ---- decoding ---- */

/* Decodes ids into text: pieces joined with the model's spaces restored, the leading
 * space dropped, pad and EOS skipped, sentinels shown as `<extra_id_N>`, unk as the
 * model shows it (sentencepiece: " ⁇ "). Writes at most `cap` bytes including the
 * terminating NUL, returns the full length (snprintf-like), or TOK_ERANGE for an id
 * outside the vocabulary. */
int tok_decode(const tok_model *tok, const int32_t *ids, int n, char *out, size_t cap);

/* Flags of tok_decode_flags(). */
enum tok_decode_flag {
    /* transformers' clean_up_tokenization_spaces (decode()'s default in 4.46, not its
     * pipelines'): " ." " ?" " !" " ," lose their space, " ' " becomes "'", " n't" " 'm"
     * " 's" " 've" " 're" join the word before, replaced in that order. */
    TOK_DECODE_CLEANUP = 1,
};
/* tok_decode with flags (0: tok_decode). Byte-level BPE and Marian decode as transformers'
 * decode(ids, skip_special_tokens=True): every special id skipped (BART: <s> </s> <pad>
 * <unk> <mask>; Marian: </s> <unk> <pad>). */
int tok_decode_flags(const tok_model *tok, const int32_t *ids, int n, int flags, char *out,
                     size_t cap);

/* ---- vocabulary ---- */

int tok_vocab_size(const tok_model *tok); /* pieces of the model (32000 for T5) */
int tok_eos_id(const tok_model *tok);     /* 1 for T5 */
int tok_pad_id(const tok_model *tok);     /* 0 for T5 */
int tok_unk_id(const tok_model *tok);     /* 2 for T5 */
int tok_bos_id(const tok_model *tok);     /* -1 when the model has none (T5) */
/* The text of an id as the model stores it (sentinels: "<extra_id_N>"), NULL for an id
 * the tokenizer does not know. For display and debugging: what a piece looks like is
 * the implementation's business (tok_word_start, tok_decode). */
const char *tok_piece(const tok_model *tok, int32_t id);
/* 1 if id is a sentinel <extra_id_N>. */
int tok_is_sentinel(const tok_model *tok, int32_t id);
/* The id of sentinel <extra_id_n>, -1 when the model has no such sentinel. */
int tok_sentinel_id(const tok_model *tok, int n);
/* The highest id the tokenizer can produce: its pieces, sentinels and special ids. */
int tok_max_id(const tok_model *tok);
/* Whether the tokenizer fits a model with `model_vocab` embedding rows (config.json's
 * vocab_size): every id it can produce must have a row, and the rows past its ids must
 * be padding (T5's 32128 rows for 32100 ids), not more than 1024 and 1/64 of the rows.
 * 0, or TOK_ERANGE with both sizes in err (a 250k mT5 tokenizer beside a 32k T5
 * checkpoint, or a 32k spiece.model beside a 250k-vocab mT5). Called where a model and
 * its tokenizer are opened together (nlprun, the daemon's load). */
int tok_check_vocab(const tok_model *tok, int model_vocab, char *err, size_t errlen);

#endif
