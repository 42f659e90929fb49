/* libFuzzer target: arbitrary bytes as a reply frame through libnlpclient's decoder
 * (nlpc_response_decode), the path every byte from the network takes in a client. A
 * frame either fails with NLPC_EPROTO or gives a response whose every string is readable
 * and whose arrays have the counts they claim; nothing may crash or leak. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "clients/libnlpclient/nlpclient.h"

static volatile size_t sink;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    nlpc_response *r = NULL;
    int rc = nlpc_response_decode(data, size, &r);
    if (rc < 0) {
        if (r) __builtin_trap();
        return 0;
    }
    size_t n = strlen(r->message);
    for (int i = 0; i < r->n_results; i++) {
        const nlpc_result *q = &r->results[i];
        n += strlen(q->message) + strlen(q->text) + strlen(q->answer);
        for (int k = 0; k < q->n_labels; k++) n += strlen(q->labels[k].label);
        for (int k = 0; k < q->n_hyps; k++) n += strlen(q->hyps[k].text);
    }
    if (r->has_health) n += strlen(r->health.model) + strlen(r->health.version);
    for (int k = 0; r->has_stats && k < r->stats.n_responses; k++)
        n += (size_t)r->stats.responses[k].code;
    n += strlen(nlpc_code_name(r->code));
    sink = n;
    nlpc_response_free(&r);
    return 0;
}
