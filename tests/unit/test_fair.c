/* Fair queueing between clients in daemon/dmn_sched.c: within a priority, clients take
 * turns; each client's documents keep their order; priority still comes first. */
#include <stdlib.h>
#include <string.h>

#include "daemon/dmn_sched.h"
#include "tests/harness/harness.h"

/* A request of n documents from the client named by `who` (its route's first frame). */
static dmn_req *client_req(const char *who, int n, int priority)
{
    dmn_req *r = calloc(1, sizeof *r);
    r->n_docs = n;
    r->n_left = n;
    r->priority = priority;
    r->doc_lens = calloc((size_t)n, sizeof *r->doc_lens);
    r->docs = calloc((size_t)n, sizeof *r->docs);
    r->out = calloc((size_t)n, sizeof *r->out);
    for (int i = 0; i < n; i++) r->doc_lens[i] = 8;
    const void *data[1] = { who };
    size_t len[1] = { strlen(who) };
    if (who[0]) dmn_route_set(&r->route, 0, data, len, 1);
    return r;
}

TEST(daemon_queue_fair_between_clients)
{
    dmn_queue *q = dmn_queue_new(3000, 512);
    REQUIRE(q);
    dmn_req *etl = client_req("etl-job", 2000, 0);
    REQUIRE(dmn_queue_push(q, etl, 0) == 0);
    dmn_item it[4];
    /* the ETL job has started: 3 of its documents taken */
    REQUIRE(dmn_queue_take(q, it, 3, 1 << 20, 0, 3, 0) == 3);
    CHECK(it[0].req == etl && it[0].doc == 0 && it[2].doc == 2);
    /* an interactive client sends one document at a time: each is next, or one after */
    for (int round = 0; round < 20; round++) {
        dmn_req *one = client_req("interactive", 1, 0);
        REQUIRE(dmn_queue_push(q, one, 0) == 0);
        int waited = 0, found = 0;
        while (!found && waited < 3) {
            REQUIRE(dmn_queue_try_take(q, it) == 1);
            found = it[0].req == one;
            waited += !found;
        }
        CHECK_MSG(found && waited <= 1, "round %d: %d ETL documents before it", round, waited);
        dmn_req_free(&one);
    }
    /* the ETL job's documents still come in their order */
    int prev = -1, ok = 1;
    while (dmn_queue_try_take(q, it) == 1) {
        ok &= it[0].req == etl && it[0].doc > prev;
        prev = it[0].doc;
    }
    CHECK(ok && prev == 1999);
    dmn_req_free(&etl);
    dmn_queue_free(&q);
}

TEST(daemon_queue_fair_round_robin_and_priority)
{
    dmn_queue *q = dmn_queue_new(64, 512);
    dmn_req *a = client_req("a", 4, 0), *b = client_req("b", 2, 0), *c = client_req("c", 1, 0),
            *urgent = client_req("a", 1, 5);
    REQUIRE(q);
    REQUIRE(dmn_queue_push(q, a, 0) == 0);
    REQUIRE(dmn_queue_push(q, b, 0.1) == 0);
    REQUIRE(dmn_queue_push(q, c, 0.2) == 0);
    REQUIRE(dmn_queue_push(q, urgent, 0.3) == 0);
    dmn_item it[16];
    REQUIRE(dmn_queue_take(q, it, 16, 1 << 20, 0, 16, 0) == 8);
    /* priority first, then turns: a b c, a b, a, a */
    dmn_req *want[8] = { urgent, a, b, c, a, b, a, a };
    int want_doc[8] = { 0, 0, 0, 0, 1, 1, 2, 3 };
    for (int i = 0; i < 8; i++)
        CHECK_MSG(it[i].req == want[i] && it[i].doc == want_doc[i], "position %d", i);
    dmn_req_free(&a), dmn_req_free(&b), dmn_req_free(&c), dmn_req_free(&urgent);
    dmn_queue_free(&q);
}
