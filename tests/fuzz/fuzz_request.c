/* libFuzzer target: any bytes through the daemon's request decoder and validator
 * (dmn_req_decode), then -- for what it accepts -- through the response encoder with
 * fake per-document outcomes, and the encoded response must unpack again. Finds
 * crashes, leaks (free_unpacked on every path) and UBSan reports. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/dmn_conf.h"
#include "daemon/dmn_req.h"
#include "proto/nlp.pb-c.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static dmn_conf conf;
    static int init;
    char err[320];
    dmn_req *r = NULL;
    uint64_t id = 0;
    void *buf = NULL;
    size_t len = 0;

    if (!init) {
        dmn_conf_defaults(&conf);
        conf.limits.max_message_bytes = 4096; /* so large inputs hit the size check */
        conf.limits.max_documents = 8;
        conf.limits.max_labels = 8;
        init = 1;
    }
    int code = dmn_req_decode(data, size, &conf.limits, 16, &r, &id, err, sizeof err);
    if (code != DMN_OK) {
        if (r) abort(); /* contract: no request on error */
        if (code <= DMN_OK || code >= DMN_N_CODES) abort();
        if (dmn_resp_error(id, code, err, &buf, &len) == 0) free(buf);
        return 0;
    }
    if (!r) abort();
    if (r->kind == DMN_REQ_TASK) {
        if (r->n_docs < 1 || r->n_docs > conf.limits.max_documents) abort();
        for (int i = 0; i < r->n_docs; i++) {
            if (strlen(r->docs[i]) != r->doc_lens[i] || r->doc_lens[i] == 0) abort();
            if (!dmn_utf8_valid(r->docs[i], r->doc_lens[i], NULL)) abort();
            r->out[i].code = i % 3 == 1 ? DMN_INPUT_TOO_LONG : DMN_OK;
        }
        if (dmn_resp_task(r, 1.0, &buf, &len) == 0) {
            Nlp__V1__Response *p = nlp__v1__response__unpack(NULL, len, buf);
            if (!p || p->id != r->id || p->n_results != (size_t)r->n_docs) abort();
            nlp__v1__response__free_unpacked(p, NULL);
            free(buf);
        }
    }
    dmn_req_free(&r);
    return 0;
}
