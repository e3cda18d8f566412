/* http_client.h - a blocking HTTP client for the unit tests that run a
 * server in-process (libcurl's easy interface). Include it after
 * <cmocka.h>. */
#ifndef SLUICE_TEST_HTTP_CLIENT_H
#define SLUICE_TEST_HTTP_CLIENT_H

#include <curl/curl.h>
#include <stdlib.h>
#include <string.h>

struct test_resp {
    long status;
    char *headers; /* the response's header lines, as received */
    char *body;
    size_t len;
    size_t hcap, bcap, hlen;
};

/* Append n bytes to a NUL-terminated growing string. */
static void test_resp_add(char **s, size_t *len, size_t *cap, const char *p, size_t n)
{
    while (*len + n + 1 > *cap)
        *s = realloc(*s, *cap = *cap ? 2 * *cap : 4096);
    memcpy(*s + *len, p, n);
    *len += n;
    (*s)[*len] = '\0';
}

static size_t test_resp_body_cb(char *p, size_t size, size_t n, void *arg)
{
    struct test_resp *r = arg;

    test_resp_add(&r->body, &r->len, &r->bcap, p, size * n);
    return size * n;
}

static size_t test_resp_header_cb(char *p, size_t size, size_t n, void *arg)
{
    struct test_resp *r = arg;

    test_resp_add(&r->headers, &r->hlen, &r->hcap, p, size * n);
    return size * n;
}

/* method url with the given header lines (NULL-terminated, or NULL) and
 * body (NULL: none). Fills r (free it with test_resp_free); returns curl's
 * code. */
static inline CURLcode test_fetch(const char *method, const char *url, const char *const *headers,
                                  const char *body, struct test_resp *r)
{
    CURL *c = curl_easy_init();
    struct curl_slist *h = NULL;
    CURLcode rc;

    memset(r, 0, sizeof(*r));
    test_resp_body_cb("", 1, 0, r);
    test_resp_header_cb("", 1, 0, r);
    for (; headers && *headers; headers++)
        h = curl_slist_append(h, *headers);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    if (body) {
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
    }
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, test_resp_body_cb);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, r);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, test_resp_header_cb);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, r);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 20000L);
    rc = curl_easy_perform(c);
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r->status);
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
    return rc;
}

/* The value of a response header (case-insensitive name), in buf; NULL
 * when absent. */
static inline const char *test_header(const struct test_resp *r, const char *name, char *buf,
                                      size_t n)
{
    size_t nlen = strlen(name);

    for (const char *p = r->headers; p && *p;) {
        const char *eol = strchr(p, '\n');
        size_t len = eol ? (size_t)(eol - p) : strlen(p);

        if (len > nlen && strncasecmp(p, name, nlen) == 0 && p[nlen] == ':') {
            const char *v = p + nlen + 1;
            size_t vlen = len - nlen - 1;

            while (vlen && (*v == ' '))
                v++, vlen--;
            while (vlen && (v[vlen - 1] == '\r' || v[vlen - 1] == ' '))
                vlen--;
            snprintf(buf, n, "%.*s", (int)vlen, v);
            return buf;
        }
        p = eol ? eol + 1 : p + len;
    }
    return NULL;
}

static inline void test_resp_free(struct test_resp *r)
{
    free(r->headers);
    free(r->body);
    memset(r, 0, sizeof(*r));
}

#endif
