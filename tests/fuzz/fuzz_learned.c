/* libFuzzer: the learned scorer's weights parser, and scoring with whatever
 * it accepts (a hostile weights file must not crash the gateway). */
#include <stdint.h>
#include <stdlib.h>

#include "../../src/learned.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char err[256];
    struct learned_model *m = learned_parse((const char *)data, size, err, sizeof(err));

    if (m) {
        double s = learned_score(m, "Which is heavier? A) a feather B) a brick", "B", "stop");

        if (!(s >= 0.0 && s <= 1.0))
            abort();
        learned_free(m);
    }
    return 0;
}
