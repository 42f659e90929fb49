/* Reply routes and the per-peer unread-reply accounting (daemon/dmn_route.h). */
#include <stdlib.h>
#include <string.h>

#include "daemon/dmn_route.h"
#include "tests/harness/harness.h"

TEST(daemon_route_copies_and_bounds_frames)
{
    dmn_route r = { 0 };
    const void *data[DMN_MAX_ENV + 1] = { "peer", "", "hop" };
    size_t len[DMN_MAX_ENV + 1] = { 4, 0, 3 };
    REQUIRE(dmn_route_set(&r, 0, data, len, 3) == 0);
    CHECK(r.n_env == 3 && dmn_route_bytes(&r) == 7);
    CHECK(memcmp(dmn_route_frame(&r, 0), "peer", 4) == 0);
    CHECK(r.env_len[1] == 0 && memcmp(dmn_route_frame(&r, 2), "hop", 3) == 0);
    for (int i = 0; i <= DMN_MAX_ENV; i++) data[i] = "x", len[i] = 1;
    CHECK(dmn_route_set(&r, 0, data, len, DMN_MAX_ENV + 1) < 0);
    CHECK(r.n_env == 0 && r.env == NULL); /* a refused set leaves it empty */
    len[0] = 70000;
    CHECK(dmn_route_set(&r, 0, data, len, 1) < 0);
    CHECK(dmn_route_set(&r, 1, data, len, 0) == 0 && r.transport == 1);
    dmn_route_clear(&r);
}

TEST(daemon_backlog_caps_each_peer)
{
    dmn_backlog *b = dmn_backlog_new(1000);
    REQUIRE(b);
    void *t[4];
    for (int i = 0; i < 3; i++) {
        t[i] = dmn_backlog_reserve(b, "A", 1, 300);
        CHECK(t[i] != NULL);
    }
    CHECK(dmn_backlog_bytes(b, "A", 1) == 900);
    CHECK(dmn_backlog_reserve(b, "A", 1, 101) == NULL); /* 1001 > 1000: dropped */
    t[3] = dmn_backlog_reserve(b, "B", 1, 1000);        /* another peer: its own cap */
    CHECK(t[3] != NULL);
    void *push = dmn_backlog_reserve(b, "", 0, 1); /* the PUSH key is a peer too */
    CHECK(push != NULL);
    /* libzmq's release gives the bytes back (and frees the message). */
    dmn_backlog_release(malloc(300), t[0]);
    CHECK(dmn_backlog_bytes(b, "A", 1) == 600);
    void *again = dmn_backlog_reserve(b, "A", 1, 400);
    CHECK(again != NULL);
    CHECK(dmn_backlog_peers(b) == 3);
    dmn_backlog_release(malloc(300), t[1]);
    dmn_backlog_release(malloc(300), t[2]);
    dmn_backlog_release(malloc(400), again);
    dmn_backlog_release(malloc(1000), t[3]);
    dmn_backlog_sweep(b); /* A and B have nothing outstanding; the PUSH key has 1 */
    CHECK_MSG(dmn_backlog_peers(b) == 1, "%d peers left", dmn_backlog_peers(b));
    CHECK(dmn_backlog_bytes(b, "A", 1) == 0);
    dmn_backlog_release(malloc(1), push);
    dmn_backlog_sweep(b);
    CHECK(dmn_backlog_peers(b) == 0);
    dmn_backlog_free(&b);
    CHECK(b == NULL);
}
