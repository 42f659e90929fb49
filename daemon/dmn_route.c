/* Reply routes and per-peer unread-reply accounting (see dmn_route.h). I/O thread, but
 * dmn_backlog_release (libzmq's threads). */
#include "daemon/dmn_route.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

int dmn_route_set(dmn_route *r, int transport, const void *const *data, const size_t *len, int n)
{
    size_t total = 0;
    dmn_route_clear(r);
    r->transport = transport;
    if (n < 0 || n > DMN_MAX_ENV) return -1;
    for (int i = 0; i < n; i++) {
        if (len[i] > UINT16_MAX) return -1;
        total += len[i];
    }
    if (n == 0) return 0;
    r->env = malloc(total ? total : 1);
    if (!r->env) return -1;
    unsigned char *p = r->env;
    for (int i = 0; i < n; i++) {
        if (len[i]) memcpy(p, data[i], len[i]);
        p += len[i];
        r->env_len[i] = (uint16_t)len[i];
    }
    r->n_env = n;
    return 0;
}

void dmn_route_clear(dmn_route *r)
{
    free(r->env);
    r->env = NULL;
    r->n_env = 0;
}

size_t dmn_route_bytes(const dmn_route *r)
{
    size_t n = 0;
    for (int i = 0; i < r->n_env; i++) n += r->env_len[i];
    return n;
}

const unsigned char *dmn_route_frame(const dmn_route *r, int i)
{
    const unsigned char *p = r->env;
    for (int k = 0; k < i; k++) p += r->env_len[k];
    return p;
}

/* ---- unread replies per peer ---- */

#define BUCKETS 4096 /* peers hash into chains; a sweep frees idle ones */

typedef struct peer {
    /* Written by reserve (I/O thread) and release (any thread). The entry may be freed
     * by a sweep once msgs is 0: release touches nothing after its decrement of msgs. */
    atomic_size_t bytes;
    atomic_int msgs;
    struct peer *next; /* chain (I/O thread) */
    size_t keylen;
    unsigned char key[];
} peer;

/* One reserved reply: the hint libzmq hands back to dmn_backlog_release. */
typedef struct ticket {
    peer *p;
    size_t len;
} ticket;

struct dmn_backlog {
    size_t cap;
    int n_peers;
    peer *bucket[BUCKETS];
};

dmn_backlog *dmn_backlog_new(size_t cap)
{
    dmn_backlog *b = calloc(1, sizeof *b);
    if (b) b->cap = cap;
    return b;
}

void dmn_backlog_free(dmn_backlog **bp)
{
    dmn_backlog *b = *bp;
    if (!b) return;
    for (int i = 0; i < BUCKETS; i++)
        for (peer *p = b->bucket[i], *next; p; p = next) {
            next = p->next;
            free(p);
        }
    free(b);
    *bp = NULL;
}

static uint32_t hash(const unsigned char *k, size_t n)
{
    uint32_t h = 2166136261u; /* FNV-1a */
    for (size_t i = 0; i < n; i++) h = (h ^ k[i]) * 16777619u;
    return h % BUCKETS;
}

static peer *find(const dmn_backlog *b, const void *key, size_t keylen)
{
    for (peer *p = b->bucket[hash(key, keylen)]; p; p = p->next)
        if (p->keylen == keylen && (!keylen || memcmp(p->key, key, keylen) == 0)) return p;
    return NULL;
}

void *dmn_backlog_reserve(dmn_backlog *b, const void *key, size_t keylen, size_t len)
{
    peer *p = find(b, key, keylen);
    if (!p) {
        p = calloc(1, sizeof *p + keylen);
        if (!p) return NULL;
        p->keylen = keylen;
        if (keylen) memcpy(p->key, key, keylen); /* the PUSH socket's key is empty */
        uint32_t h = hash(key, keylen);
        p->next = b->bucket[h];
        b->bucket[h] = p;
        b->n_peers++;
    }
    /* Only this thread adds; a concurrent release only lowers the count. */
    if (atomic_load(&p->bytes) + len > b->cap) return NULL;
    ticket *t = malloc(sizeof *t);
    if (!t) return NULL;
    t->p = p;
    t->len = len;
    atomic_fetch_add(&p->bytes, len);
    atomic_fetch_add(&p->msgs, 1);
    return t;
}

void dmn_backlog_release(void *data, void *hint)
{
    ticket *t = hint;
    peer *p = t->p;
    size_t len = t->len;
    free(data);
    free(t);
    atomic_fetch_sub(&p->bytes, len);
    atomic_fetch_sub(&p->msgs, 1); /* last touch: the entry may be swept from here on */
}

void dmn_backlog_sweep(dmn_backlog *b)
{
    for (int i = 0; i < BUCKETS; i++)
        for (peer **pp = &b->bucket[i]; *pp;) {
            peer *p = *pp;
            if (atomic_load(&p->msgs) == 0) {
                *pp = p->next;
                free(p);
                b->n_peers--;
            } else {
                pp = &p->next;
            }
        }
}

int dmn_backlog_peers(const dmn_backlog *b) { return b->n_peers; }

size_t dmn_backlog_bytes(const dmn_backlog *b, const void *key, size_t keylen)
{
    const peer *p = find(b, key, keylen);
    return p ? atomic_load(&p->bytes) : 0;
}
