/* libFuzzer: the gateway.conf loader, from text. Every input either loads or
 * gives at least one error message; nothing else. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../src/config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct config_errors errs = {0};
    struct config *cfg;
    char *text = malloc(size + 1);

    memcpy(text, data, size);
    text[size] = '\0';
    cfg = config_load_string(text, "fuzz.conf", &errs);
    if (cfg == NULL && errs.n == 0)
        abort();
    if (cfg)
        config_unref(cfg);
    config_errors_free(&errs);
    free(text);
    return 0;
}
