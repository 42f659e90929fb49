/* libFuzzer target: arbitrary bytes as a .safetensors file and as a config.json.
 * Both readers take paths, so the input goes through a memfd (no disk writes). Any
 * result is fine except a crash, a sanitizer report or a leak. */
#include "engine/hfconfig.h"
#include "engine/st.h"

#include <stdint.h>
#include <stdio.h>
#include <sys/mman.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int fd = memfd_create("fuzz_st", 0);
    if (fd < 0) return 0;
    if (write(fd, data, size) == (ssize_t)size) {
        char path[64], err[256];
        snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
        st_set *s = st_open_file(path, err, sizeof err);
        for (int i = 0; i < st_count(s); i++) {
            const st_tensor *t = st_at(s, i);
            volatile uint8_t sink = 0;
            /* Every byte the loader vouches for must be readable. */
            for (size_t b = 0; b < t->nbytes; b++) sink ^= ((const uint8_t *)t->data)[b];
            (void)sink;
            if (st_find(s, t->name) != t) __builtin_trap();
        }
        st_close(&s);
        eng_config c;
        (void)hf_config_load(path, &c, &(const eng_arch *){ NULL }, err, sizeof err);
    }
    close(fd);
    return 0;
}
