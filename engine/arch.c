/* The architecture table: which config.json model_type the engine serves, and with which
 * config reader, tensor names and forward pass. A new family is one entry here and one
 * file (its keys and tensor names, like arch_t5.c); the forward pass is shared. */
#include "engine/hfconfig.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <string.h>

static const eng_arch *const arch_table[] = {
    &eng_arch_t5,
    &eng_arch_bart,
};
#define N_ARCH (sizeof arch_table / sizeof arch_table[0])

const char *eng_arch_supported(void)
{
    static char list[256];
    if (list[0]) return list;
    size_t len = 0;
    for (size_t i = 0; i < N_ARCH; i++)
        for (int k = 0; k < 4 && arch_table[i]->model_types[k]; k++)
            len += (size_t)snprintf(list + len, sizeof list - len, "%s%s", len ? ", " : "",
                                    arch_table[i]->model_types[k]);
    return list;
}

const eng_arch *eng_arch_find(const char *path, const cJSON *root, const char **model_type,
                              char *err, size_t errlen)
{
    const char *mt;
    if (hf_read_str(path, root, "model_type", &mt, err, errlen) < 0) return NULL;
    const cJSON *archs = hf_get(root, "architectures");
    if (archs && !cJSON_IsArray(archs)) {
        hf_err(err, errlen, "%s: key 'architectures' must be an array of strings", path);
        return NULL;
    }
    for (size_t i = 0; i < N_ARCH; i++) {
        const eng_arch *a = arch_table[i];
        for (int k = 0; k < 4 && a->model_types[k]; k++)
            if (mt && strcmp(mt, a->model_types[k]) == 0) {
                *model_type = a->model_types[k];
                return a;
            }
        if (mt) continue;
        /* architectures[k] is the class of model_types[k] */
        for (const cJSON *s = archs ? archs->child : NULL; s; s = s->next)
            for (int k = 0; k < 4 && a->architectures[k]; k++)
                if (cJSON_IsString(s) && strcmp(s->valuestring, a->architectures[k]) == 0) {
                    *model_type = a->model_types[k] ? a->model_types[k] : a->model_types[0];
                    return a;
                }
    }
    if (mt)
        hf_err(err, errlen, "%s: unknown model_type '%.64s' (supported: %s)", path, mt,
               eng_arch_supported());
    else
        hf_err(err, errlen,
               "%s: unknown architecture: no model_type, and 'architectures' "
               "names no supported one (supported model_type: %s)",
               path, eng_arch_supported());
    return NULL;
}
