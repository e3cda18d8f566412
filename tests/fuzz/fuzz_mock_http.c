/* libFuzzer: sluice-mock's HTTP request parser (it takes bytes from any
 * client the tests or benchmarks point at it). */
#include <stdint.h>
#include <stdlib.h>

#include "../../src/mock/mock_http.c"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct mock_http_req req;
    int n = mock_http_parse((const char *)data, size, &req);

    if (n > (int)size)
        abort();
    return 0;
}
