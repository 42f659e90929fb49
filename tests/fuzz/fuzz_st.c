/* libFuzzer target: arbitrary bytes as a .safetensors file and as a config.json, parsed
 * in memory by the parsers the file readers use (st_open_mem, hf_config_parse): no
 * system calls per input. Any result is fine except a crash, a sanitizer report or a
 * leak. */
#include "engine/hfconfig.h"
#include "engine/st.h"

#include <stdint.h>
#include <stdio.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char err[256];
    st_set *s = st_open_mem(data, size, "fuzz.safetensors", err, sizeof err);
    for (int i = 0; i < st_count(s); i++) {
        const st_tensor *t = st_at(s, i);
        /* Every byte the loader vouches for must be readable: the load-time scan for
         * NaN and infinity reads them all (under ASan), and finds only what is there. */
        int64_t bad = st_first_nonfinite(t);
        if (bad >= 0 && (uint64_t)bad >= t->nbytes / st_dtype_size(t->dtype)) __builtin_trap();
        if (st_find(s, t->name) != t) __builtin_trap();
    }
    st_close(&s);
    eng_config c;
    (void)hf_config_parse((const char *)data, size, "config.json", &c, NULL, err, sizeof err);
    return 0;
}
