/* The int8 cache (issue 16): the packed int8 blobs of a model loaded with --weights int8,
 * written once to `model.q8` beside the checkpoint and mmapped on the next start instead
 * of quantizing again. Opt-in: the environment variable NLPD_Q8_CACHE=1 (model.c), since
 * it writes into the model's directory.
 *
 * File: a 64-byte header (magic "NLPDQ8C\0", version, entry count, the checkpoint's
 * identity (st_identity: each safetensors file's size, mtime and header), the file's
 * size), then the table (one 256-byte entry per matrix: tensor name, N, K, offset and
 * bytes of its blob), then the blobs, each 64-byte aligned (eng_q8.h's self-contained
 * layout). Little-endian, as the machine that wrote it.
 *
 * Everything read is checked before use: header, identity, size, every entry's bounds
 * and alignment, and each blob by eng_q8_weight_check (its own header, scales, values and
 * row sums). A file that fails is refused with its reason on stderr, the model is
 * quantized from the checkpoint, and the file is written again. Writing goes to a
 * temporary name renamed over the old one, so a reader never sees half a file; a
 * directory that cannot be written only costs the quantization at the next start. */
#include "engine/eng_int.h"
#include "engine/eng_q8.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define WC_MAGIC "NLPDQ8C"
#define WC_VERSION 1u
#define WC_NAME 232

typedef struct wc_header {
    char magic[8];
    uint32_t version, n;
    uint64_t identity;
    uint64_t size; /* the whole file */
    uint64_t pad[4];
} wc_header;

typedef struct wc_entry {
    char name[WC_NAME];
    int32_t N, K;
    uint64_t off, bytes;
} wc_entry;

_Static_assert(sizeof(wc_header) == 64, "header size");
_Static_assert(sizeof(wc_entry) == 256, "entry size");

struct eng_q8cache {
    char path[1100];
    const unsigned char *map; /* a valid file (header and table checked), or NULL */
    size_t size;
    const wc_entry *tab;
    uint32_t n;
    int refused; /* something was refused: write the file again */
    /* what this load holds, to write */
    struct wc_item {
        char name[WC_NAME];
        int N, K;
        const void *blob;
        size_t bytes;
    } * items;
    int n_items, cap;
};

static void wc_say(const eng_q8cache *c, const char *what)
{
    fprintf(stderr, "nlpd engine: %s: %s; quantizing the model from its checkpoint again\n",
            c->path, what);
}

eng_q8cache *eng_q8cache_open(const char *dir, uint64_t identity)
{
    eng_q8cache *c = calloc(1, sizeof *c);
    if (!c) return NULL;
    snprintf(c->path, sizeof c->path, "%s/model.q8", dir);
    int fd = open(c->path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        if (errno != ENOENT) c->refused = 1, wc_say(c, strerror(errno));
        return c;
    }
    struct stat sb;
    const char *why = NULL;
    if (fstat(fd, &sb) < 0 || !S_ISREG(sb.st_mode)) {
        why = "not a regular file";
    } else if ((size_t)sb.st_size < sizeof(wc_header)) {
        why = "truncated (shorter than its header)";
    } else {
        void *m = mmap(NULL, (size_t)sb.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (m == MAP_FAILED) {
            why = "cannot be mapped";
        } else {
            c->map = m, c->size = (size_t)sb.st_size;
        }
    }
    close(fd);
    if (!why) {
        wc_header h;
        memcpy(&h, c->map, sizeof h);
        if (memcmp(h.magic, WC_MAGIC, 8) != 0) why = "not an nlpd int8 cache (bad magic)";
        else if (h.version != WC_VERSION) why = "written by another version of nlpd";
        else if (h.identity != identity)
            why = "made from another checkpoint (its safetensors files changed)";
        else if (h.size != c->size)
            why = "truncated or extended (its size differs from its header's)";
        else if (h.n > (c->size - sizeof h) / sizeof(wc_entry))
            why = "its table runs past the end of the file";
        if (!why) {
            c->tab = (const wc_entry *)(c->map + sizeof h);
            c->n = h.n;
            for (uint32_t i = 0; i < c->n && !why; i++) {
                const wc_entry *e = &c->tab[i];
                size_t want = eng_q8_weight_bytes(e->N, e->K);
                if (memchr(e->name, 0, WC_NAME) == NULL || e->off % 64 || !want ||
                    e->bytes != want || e->off > c->size || e->bytes > c->size - e->off)
                    why = "a table entry is damaged";
            }
        }
    }
    if (why) {
        c->refused = 1;
        wc_say(c, why);
        if (c->map) munmap((void *)c->map, c->size);
        c->map = NULL, c->tab = NULL, c->n = 0;
    }
    return c;
}

const void *eng_q8cache_find(eng_q8cache *c, const char *name, int N, int K)
{
    if (!c || !c->map) return NULL;
    for (uint32_t i = 0; i < c->n; i++) {
        const wc_entry *e = &c->tab[i];
        if (strcmp(e->name, name) != 0) continue;
        const void *blob = c->map + e->off;
        if (e->N != N || e->K != K) {
            c->refused = 1;
            wc_say(c, "a matrix's shape differs from the checkpoint's");
            return NULL;
        }
        if (eng_q8_weight_check(blob, e->bytes, N, K) != 0) {
            char msg[320];
            snprintf(msg, sizeof msg, "the blob of '%s' is damaged", name);
            c->refused = 1;
            wc_say(c, msg);
            return NULL;
        }
        return blob;
    }
    c->refused = 1;
    char msg[320];
    snprintf(msg, sizeof msg, "'%s' is missing from it", name);
    wc_say(c, msg);
    return NULL;
}

int eng_q8cache_add(eng_q8cache *c, const char *name, int N, int K, const void *blob)
{
    if (!c) return 0;
    if (c->n_items == c->cap) {
        int cap = c->cap ? 2 * c->cap : 64;
        void *p = realloc(c->items, (size_t)cap * sizeof *c->items);
        if (!p) return -1;
        c->items = p, c->cap = cap;
    }
    struct wc_item *it = &c->items[c->n_items++];
    snprintf(it->name, sizeof it->name, "%s", name);
    it->N = N, it->K = K, it->blob = blob, it->bytes = eng_q8_weight_bytes(N, K);
    return 0;
}

/* Writes n bytes; 0 or -1. */
static int wc_write(int fd, const void *p, size_t n)
{
    const char *b = p;
    while (n) {
        ssize_t w = write(fd, b, n);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return -1;
        b += w, n -= (size_t)w;
    }
    return 0;
}

int eng_q8cache_commit(eng_q8cache *c, uint64_t identity, int fresh)
{
    if (!c || (!fresh && !c->refused) || !c->n_items) return 0;
    char tmp[1200];
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld", c->path, (long)getpid());
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        fprintf(stderr, "nlpd engine: %s: not written (%s): the next start quantizes again\n",
                c->path, strerror(errno));
        return -1;
    }
    wc_header h = { .version = WC_VERSION, .n = (uint32_t)c->n_items, .identity = identity };
    memcpy(h.magic, WC_MAGIC, 8);
    uint64_t off = sizeof h + (uint64_t)c->n_items * sizeof(wc_entry);
    off = (off + 63) & ~(uint64_t)63;
    wc_entry *tab = calloc((size_t)c->n_items, sizeof *tab);
    int bad = !tab;
    for (int i = 0; !bad && i < c->n_items; i++) {
        snprintf(tab[i].name, WC_NAME, "%s", c->items[i].name);
        tab[i].N = c->items[i].N, tab[i].K = c->items[i].K;
        tab[i].off = off, tab[i].bytes = c->items[i].bytes;
        off = (off + c->items[i].bytes + 63) & ~(uint64_t)63;
    }
    h.size = off;
    static const char zeros[64];
    uint64_t at = 0;
    bad = bad || wc_write(fd, &h, sizeof h) || wc_write(fd, tab, (size_t)c->n_items * sizeof *tab);
    at = sizeof h + (uint64_t)c->n_items * sizeof *tab;
    for (int i = 0; !bad && i < c->n_items; i++) {
        bad = wc_write(fd, zeros, (size_t)(tab[i].off - at)) ||
              wc_write(fd, c->items[i].blob, c->items[i].bytes);
        at = tab[i].off + c->items[i].bytes;
    }
    bad = bad || wc_write(fd, zeros, (size_t)(off - at));
    free(tab);
    if (close(fd) != 0) bad = 1;
    if (bad || rename(tmp, c->path) != 0) {
        fprintf(stderr, "nlpd engine: %s: not written (%s): the next start quantizes again\n",
                c->path, strerror(errno));
        unlink(tmp);
        return -1;
    }
    return 0;
}

void eng_q8cache_close(eng_q8cache **cp)
{
    if (!cp || !*cp) return;
    eng_q8cache *c = *cp;
    if (c->map) munmap((void *)c->map, c->size);
    free(c->items);
    free(c);
    *cp = NULL;
}
