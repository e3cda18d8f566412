/* libFuzzer: the learned scorer's weights parser (versions 1 and 2), and
 * scoring with whatever it accepts, peers included (a hostile weights file
 * must not crash the gateway). */
#include <stdint.h>
#include <stdlib.h>

#include "../../src/learned.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char err[256];
    struct learned_model *m = learned_parse((const char *)data, size, err, sizeof(err));

    if (m) {
        static const char *const peers[] = {"B", "A) a feather", "```\ndef f(:\n```", ""};
        double s =
            learned_score(m, "Which is heavier? A) a feather B) a brick", "B", "stop", peers, 4);

        if (!(s >= 0.0 && s <= 1.0))
            abort();
        /* Fewer peers than the file reads: the rest are empty answers. */
        s = learned_score(m, "q", "I think maybe (B", NULL, NULL, 0);
        if (!(s >= 0.0 && s <= 1.0))
            abort();
        learned_free(m);
    }
    return 0;
}
