/* mock_gen.c - the answers of sluice-mock; see mock_gen.h.
 *
 * Token pieces: BPE tokenisers glue a run of whitespace to the word after it
 * (" word") and cut long words; we do the same with a fixed cut of
 * GEN_PIECE_MAX bytes on UTF-8 boundaries. completion_tokens is the number of
 * pieces, so usage, max_tokens truncation, stream chunks and logprobs all
 * agree on one tokenisation.
 */
#include "mock_gen.h"
#include "mock_replay.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define GEN_MAX_N 128                  /* choices per request */
#define GEN_MAX_TEXT (8u << 20)        /* bytes of text over all choices */
#define GEN_MAX_PROMPT (16u << 20)     /* bytes of prompt text we look at */
#define GEN_MAX_LOGPROB_ENTRIES 200000 /* tokens x (1 + top_logprobs) */
#define GEN_MAX_TOP_LOGPROBS 20
#define GEN_PIECE_MAX 12
#define GEN_MAX_CHUNKS 10000
#define GEN_MAX_EVENTS 200000 /* content events of one stream, over all choices */
#define GEN_MAX_SCHEMA_DEPTH 8
#define GEN_MAX_SCHEMA_PROPS 64
#define EMB_DEFAULT_DIMS 64
#define EMB_MAX_DIMS 4096
#define EMB_MAX_INPUTS 2048
#define EMB_MAX_FLOATS (2u << 20)
#define JSON_FLAGS (JSON_COMPACT | JSON_REAL_PRECISION(15))

static const char *const gen_words[] = {
    "amber",   "river",  "quietly", "folds",   "the",    "lantern", "over",    "granite",
    "signal",  "maple",  "drifts",  "toward",  "a",      "copper",  "harbor",  "while",
    "seven",   "orange", "clocks",  "measure", "gentle", "thunder", "beside",  "frozen",
    "meadows", "and",    "swift",   "silver",  "foxes",  "gather",  "under",   "violet",
    "bridges", "where",  "patient", "engines", "hum",    "softly",  "across",  "northern",
    "valleys", "every",  "bright",  "morning", "brings", "careful", "answers", "from",
    "distant", "towers", "built",   "of",      "glass",  "cedar",   "stone",   "light",
    "so",      "calm",   "rivers",  "carry",   "old",    "songs",   "home",    "again",
};
#define GEN_NWORDS (sizeof(gen_words) / sizeof(gen_words[0]))

/* ---- hashing ---- */

static uint64_t mix64(uint64_t x)
{
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ull;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebull;
    x ^= x >> 31;
    return x;
}

uint64_t mock_hash(const void *p, size_t len, uint64_t seed)
{
    const unsigned char *s = p;
    uint64_t h = 0xcbf29ce484222325ull ^ mix64(seed);

    for (size_t i = 0; i < len; i++) {
        h ^= s[i];
        h *= 0x100000001b3ull;
    }
    return mix64(h);
}

/* ---- errors ---- */

int mock_fail(struct mock_err *e, int status, const char *param, const char *code,
              const char *fmt, ...)
{
    va_list ap;

    e->status = status;
    e->param = param;
    e->code = code;
    va_start(ap, fmt);
    vsnprintf(e->message, sizeof(e->message), fmt, ap);
    va_end(ap);
    return -1;
}

/* ---- text helpers ---- */

static size_t utf8_count(const char *s, size_t len)
{
    size_t n = 0;

    for (size_t i = 0; i < len; i++)
        n += ((unsigned char)s[i] & 0xc0) != 0x80;
    return n;
}

static int mock_gen_is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

/* Split s into token pieces. Returns the count and, when starts is not NULL,
 * writes each piece's start offset (starts has room for len entries, the
 * most there can be). */
static size_t gen_pieces(const char *s, size_t len, size_t *starts)
{
    size_t n = 0, i = 0;

    while (i < len) {
        size_t p0 = i;

        if (starts)
            starts[n] = i;
        n++;
        while (i < len && mock_gen_is_space(s[i]) && i - p0 < GEN_PIECE_MAX)
            i++;
        while (i < len && !mock_gen_is_space(s[i])) {
            /* Cut long words, but never inside a UTF-8 sequence. */
            if (i - p0 >= GEN_PIECE_MAX && ((unsigned char)s[i] & 0xc0) != 0x80)
                break;
            i++;
        }
    }
    return n;
}

/* Fill c->starts/ntok from c->text, and cut the text to max_tokens pieces
 * (0 = no limit). Return 1 when it cut. */
int mock_choice_tokenise(struct mock_choice *c, long long max_tokens)
{
    c->starts = xmalloc((c->len ? c->len : 1) * sizeof(size_t));
    c->ntok = gen_pieces(c->text, c->len, c->starts);
    if (max_tokens > 0 && (unsigned long long)max_tokens < c->ntok) {
        c->len = c->starts[max_tokens];
        c->text[c->len] = '\0';
        c->ntok = (size_t)max_tokens;
        return 1;
    }
    return 0;
}

/* "Mock answer N: " and some words, all derived from h. Caller frees. */
static char *gen_sentence(uint64_t h, size_t *len)
{
    struct buf b;
    size_t nwords = 5 + (size_t)((h >> 10) % 8);
    uint64_t x = h;

    int r;

    buf_init(&b, 4096); /* twelve short words at most */
    r = buf_printf(&b, "Mock answer %u:", (unsigned)(h % 1000));
    for (size_t i = 0; i < nwords; i++) {
        x = mix64(x + i);
        r |= buf_puts(&b, " ");
        r |= buf_puts(&b, gen_words[x % GEN_NWORDS]);
    }
    r |= buf_puts(&b, ".");
    sl_assert(r == 0);
    return buf_steal(&b, len);
}

/* Append the text of a message's content to b: a string, or the "text" of
 * the text parts of an array, joined with "\n". Other shapes add nothing.
 * Return 0, or -1 when b is full. */
static int mock_gen_content_text(const json_t *content, struct buf *b)
{
    size_t i;
    json_t *part;
    int first = 1;

    if (json_is_string(content))
        return buf_append(b, json_string_value(content), json_string_length(content));
    if (!json_is_array(content))
        return 0;
    json_array_foreach (content, i, part) {
        json_t *t = json_object_get(part, "text");

        if (!json_is_string(t))
            continue;
        if ((!first && buf_append(b, "\n", 1) < 0) ||
            buf_append(b, json_string_value(t), json_string_length(t)) < 0)
            return -1;
        first = 0;
    }
    return 0;
}

/* ---- JSON schema values: JSON mode answers and tool arguments ---- */

static const char *schema_type(const json_t *schema)
{
    json_t *t = json_object_get(schema, "type");
    size_t i;
    json_t *v;

    if (json_is_string(t))
        return json_string_value(t);
    json_array_foreach (t, i, v) {
        if (json_is_string(v) && strcmp(json_string_value(v), "null") != 0)
            return json_string_value(v);
    }
    if (json_is_object(json_object_get(schema, "properties")))
        return "object";
    return NULL;
}

/* A value that fits schema (a JSON Schema subset: type, enum, properties,
 * items), derived from h. The first string gets the sentence (*sentence is
 * then set to NULL), later ones a word. The output has at most one value per
 * schema node, so its size is bounded by the request's. Returns a new
 * reference. */
static json_t *schema_value(const json_t *schema, uint64_t h, const char **sentence, int depth)
{
    json_t *en = json_object_get(schema, "enum");
    const char *type = schema_type(schema);

    if (json_is_array(en) && json_array_size(en) > 0)
        return json_deep_copy(json_array_get(en, h % json_array_size(en)));
    if (type == NULL || depth > GEN_MAX_SCHEMA_DEPTH)
        return json_null();
    if (strcmp(type, "string") == 0) {
        const char *s = *sentence ? *sentence : gen_words[h % GEN_NWORDS];

        *sentence = NULL;
        return json_string(s);
    }
    if (strcmp(type, "integer") == 0)
        return json_integer((json_int_t)(h % 100));
    if (strcmp(type, "number") == 0)
        return json_real((double)(h % 1000) / 10.0);
    if (strcmp(type, "boolean") == 0)
        return json_boolean(h & 1);
    if (strcmp(type, "array") == 0) {
        json_t *arr = json_array();
        json_t *items = json_object_get(schema, "items");

        if (json_is_object(items))
            json_array_append_new(arr, schema_value(items, mix64(h), sentence, depth + 1));
        return arr;
    }
    if (strcmp(type, "object") == 0) {
        json_t *obj = json_object();
        json_t *props = json_object_get(schema, "properties");
        const char *key;
        json_t *sub;
        size_t n = 0;

        json_object_foreach (props, key, sub) {
            if (n++ == GEN_MAX_SCHEMA_PROPS)
                break;
            json_object_set_new(obj, key, schema_value(sub, mix64(h + n), sentence, depth + 1));
        }
        return obj;
    }
    return json_null();
}

json_t *mock_gen_tool_input(const json_t *schema, uint64_t h)
{
    const char *word = "mock";
    json_t *v = schema_value(schema, h, &word, 0);

    if (!json_is_object(v)) {
        json_decref(v);
        v = json_object();
    }
    return v;
}

/* The JSON-mode answer: an object fitting the json_schema when one is given,
 * else {"answer": sentence}. Caller frees. */
static char *gen_json_answer(const json_t *rf, uint64_t h, const char *sentence, size_t *len)
{
    json_t *schema = json_object_get(json_object_get(rf, "json_schema"), "schema");
    json_t *v;
    char *s;

    if (json_is_object(schema) && json_is_object(json_object_get(schema, "properties")))
        v = schema_value(schema, h, &sentence, 0);
    else
        v = json_pack("{s:s}", "answer", sentence);
    s = json_dumps(v, JSON_FLAGS | JSON_ENCODE_ANY);
    json_decref(v);
    if (s == NULL)
        s = xstrdup("{}");
    *len = strlen(s);
    return s;
}

/* The tool the answer calls, or NULL for a text answer. tool_choice "none"
 * never calls, "required" or a named function always does; "auto" (the
 * default with tools) calls the first tool unless the last message is a tool
 * result, which is how an agent loop ends. */
static const json_t *gen_pick_tool(const json_t *req, const char *last_role)
{
    json_t *tools = json_object_get(req, "tools");
    json_t *tc = json_object_get(req, "tool_choice");
    const char *want = NULL;
    size_t i;
    json_t *t;

    if (!json_is_array(tools) || json_array_size(tools) == 0)
        return NULL;
    if (json_is_string(tc)) {
        if (strcmp(json_string_value(tc), "none") == 0)
            return NULL;
        if (strcmp(json_string_value(tc), "required") != 0 && last_role &&
            strcmp(last_role, "tool") == 0)
            return NULL;
    } else if (json_is_object(tc)) {
        want = json_string_value(json_object_get(json_object_get(tc, "function"), "name"));
    } else if (last_role && strcmp(last_role, "tool") == 0) {
        return NULL;
    }
    json_array_foreach (tools, i, t) {
        const char *name =
            json_string_value(json_object_get(json_object_get(t, "function"), "name"));

        if (name && (want == NULL || strcmp(name, want) == 0))
            return json_object_get(t, "function");
    }
    return NULL;
}

/* ---- request fields ---- */

/* An optional integer field in [min, max]: absent or null leaves *out. */
static int mock_gen_get_int(const json_t *req, const char *key, long long min, long long max,
                            long long *out, struct mock_err *err)
{
    json_t *v = json_object_get(req, key);

    if (v == NULL || json_is_null(v))
        return 0;
    if (!json_is_integer(v) || json_integer_value(v) < min || json_integer_value(v) > max)
        return mock_fail(err, 400, key, "invalid_value", "'%s' must be an integer from %lld to %lld",
                        key, min, max);
    *out = json_integer_value(v);
    return 0;
}

static int mock_gen_get_bool(const json_t *req, const char *key, int *out, struct mock_err *err)
{
    json_t *v = json_object_get(req, key);

    if (v == NULL || json_is_null(v))
        return 0;
    if (!json_is_boolean(v))
        return mock_fail(err, 400, key, "invalid_type", "'%s' must be a boolean", key);
    *out = json_is_true(v);
    return 0;
}

/* The fields chat and completions share: n, stream, stream_options. */
static int gen_common(const json_t *req, const struct mock_gen_opts *o, struct mock_answer *a,
                      long long *n, struct mock_err *err)
{
    json_t *so = json_object_get(req, "stream_options");

    *n = 1;
    if (mock_gen_get_int(req, "n", 1, GEN_MAX_N, n, err) < 0 ||
        mock_gen_get_bool(req, "stream", &a->stream, err) < 0)
        return -1;
    if (json_is_object(so) && mock_gen_get_bool(so, "include_usage", &a->include_usage, err) < 0)
        return -1;
    a->created = (long long)time(NULL);
    a->model = xstrdup(o->model);
    a->cache_read = o->cache_read;
    a->cache_write = o->cache_write;
    a->forced = o->forced;
    a->forced_lp = o->forced_lp;
    return 0;
}

static long long gen_max_tokens(const json_t *req, struct mock_err *err, int *bad)
{
    long long mt = 0;

    *bad = mock_gen_get_int(req, "max_completion_tokens", 1, 1LL << 40, &mt, err) < 0;
    if (!*bad && mt == 0)
        *bad = mock_gen_get_int(req, "max_tokens", 1, 1LL << 40, &mt, err) < 0;
    return mt;
}

/* Check the size caps before anything big is rendered. */
static int gen_check_size(struct mock_answer *a, struct mock_err *err)
{
    unsigned long long text = 0, toks = 0;

    for (size_t i = 0; i < a->nchoices; i++) {
        text += a->choices[i].len;
        toks += a->choices[i].ntok;
    }
    if (text > GEN_MAX_TEXT)
        return mock_fail(err, 400, "n", "response_too_large",
                        "the answer would exceed sluice-mock's %u MiB limit", GEN_MAX_TEXT >> 20);
    if (a->logprobs && toks * (1u + (unsigned)a->top_logprobs) > GEN_MAX_LOGPROB_ENTRIES)
        return mock_fail(err, 400, "logprobs", "response_too_large",
                        "logprobs for %llu tokens exceed sluice-mock's limit", toks);
    return 0;
}

/* Copy the text of choice i from mock.choices (cycled) or mock.content.
 * Return 1 when set, 0 when neither applies, -1 on a bad mock.choices. */
static int gen_override(const struct mock_gen_opts *o, size_t i, struct mock_choice *c,
                        struct mock_err *err)
{
    if (o->choices) {
        size_t nc = json_array_size(o->choices);
        json_t *v = nc ? json_array_get(o->choices, i % nc) : NULL;

        if (!json_is_string(v))
            return mock_fail(err, 400, "mock.choices", "invalid_value",
                            "'mock.choices' must be a non-empty array of strings");
        c->len = json_string_length(v);
        c->text = xstrndup(json_string_value(v), c->len);
        return 1;
    }
    if (o->content) {
        c->len = o->content_len;
        c->text = xstrndup(o->content, c->len);
        return 1;
    }
    return 0;
}

static void choices_alloc(struct mock_answer *a, size_t n)
{
    a->choices = xcalloc(n, sizeof(*a->choices));
    a->nchoices = n;
}

/* ---- chat ---- */

int mock_gen_chat(const json_t *req, const struct mock_gen_opts *o, struct mock_answer *a,
                  struct mock_err *err)
{
    json_t *messages = json_object_get(req, "messages");
    json_t *rf = json_object_get(req, "response_format");
    const char *rf_type = json_string_value(json_object_get(rf, "type"));
    const char *last_role = NULL;
    const struct mock_replay_answer *rec = NULL;
    const json_t *tool;
    struct buf all, user;
    long long n, max_tokens, top = 0;
    unsigned long long chars = 0;
    uint64_t h;
    size_t i;
    json_t *m;
    int bad;

    memset(a, 0, sizeof(*a));
    a->kind = MOCK_CHAT;
    snprintf(a->id, sizeof(a->id), "chatcmpl-mock-%llu", o->seq);
    if (!json_is_array(messages) || json_array_size(messages) == 0)
        return mock_fail(err, 400, "messages", "invalid_value",
                        "'messages' must be a non-empty array");
    if (gen_common(req, o, a, &n, err) < 0)
        goto fail;
    max_tokens = gen_max_tokens(req, err, &bad);
    if (bad || mock_gen_get_bool(req, "logprobs", &a->logprobs, err) < 0 ||
        mock_gen_get_int(req, "top_logprobs", 0, GEN_MAX_TOP_LOGPROBS, &top, err) < 0)
        goto fail;
    a->top_logprobs = (int)top;
    if (rf && !json_is_null(rf) && rf_type == NULL) {
        mock_fail(err, 400, "response_format", "invalid_value",
                 "'response_format' must be an object with a string 'type'");
        goto fail;
    }

    /* all: every message's text joined with "\n" (the replay key); user: the
     * last user message's text (what the synthetic answer derives from). */
    buf_init(&all, GEN_MAX_PROMPT);
    buf_init(&user, GEN_MAX_PROMPT);
    /* allocate: data is never NULL below */
    if (buf_append(&all, "", 0) < 0 || buf_append(&user, "", 0) < 0)
        goto too_big;
    json_array_foreach (messages, i, m) {
        json_t *role = json_object_get(m, "role");
        size_t before;

        if (!json_is_object(m) || !json_is_string(role)) {
            mock_fail(err, 400, "messages", "invalid_value",
                     "messages[%zu] must be an object with a string 'role'", i);
            goto fail_bufs;
        }
        last_role = json_string_value(role);
        if ((i > 0 && buf_append(&all, "\n", 1) < 0))
            goto too_big;
        before = all.len;
        if (mock_gen_content_text(json_object_get(m, "content"), &all) < 0)
            goto too_big;
        chars += utf8_count(all.data + before, all.len - before);
        if (strcmp(last_role, "user") == 0) {
            buf_reset(&user);
            if (buf_append(&user, all.data + before, all.len - before) < 0)
                goto too_big;
        }
    }
    /* ceil(chars / 4) + 4 per message: the usual rule of thumb for English
     * text and OpenAI's per-message framing. */
    a->prompt_tokens = (long long)((chars + 3) / 4 + 4 * json_array_size(messages));
    h = user.len ? mock_hash(user.data, user.len, 0) : mock_hash(all.data, all.len, 0);

    if (o->replay && !o->content && !o->choices) {
        int mi = mock_replay_model_index(o->replay, o->model);

        if (mi >= 0) {
            rec = mock_replay_find(o->replay, mi, all.data, all.len);
            if (rec == NULL && user.len)
                rec = mock_replay_find(o->replay, mi, user.data, user.len);
            if (rec == NULL) {
                mock_fail(err, 404, "messages", "replay_miss",
                         "sluice-mock has no recorded answer of model '%s' for this prompt",
                         o->model);
                goto fail_bufs;
            }
        }
    }

    tool = rec || o->content || o->choices ? NULL : gen_pick_tool(req, last_role);
    choices_alloc(a, (size_t)n);
    for (i = 0; i < (size_t)n; i++) {
        struct mock_choice *c = &a->choices[i];
        int r = gen_override(o, i, c, err);

        c->seed = mix64(h + i);
        c->finish_reason = "stop";
        if (r < 0)
            goto fail_bufs;
        if (r == 0 && rec) {
            c->len = rec->content_len;
            c->text = xstrndup(rec->content, c->len);
        } else if (r == 0 && tool) {
            json_t *args = mock_gen_tool_input(json_object_get(tool, "parameters"), h);

            c->text = json_dumps(args, JSON_FLAGS);
            c->len = strlen(c->text);
            json_decref(args);
            c->tool_name = xstrdup(json_string_value(json_object_get(tool, "name")));
            snprintf(c->tool_id, sizeof(c->tool_id), "call_mock_%012llx",
                     (unsigned long long)(mix64(h + i) & 0xffffffffffffull));
            c->finish_reason = "tool_calls";
        } else if (r == 0) {
            size_t slen;
            char *s = gen_sentence(h, &slen);

            if (rf_type &&
                (strcmp(rf_type, "json_object") == 0 || strcmp(rf_type, "json_schema") == 0)) {
                c->text = gen_json_answer(rf, h, s, &c->len);
                free(s);
            } else {
                c->text = s;
                c->len = slen;
            }
        }
        /* Recorded answers are replayed exactly, whatever max_tokens says. */
        if (mock_choice_tokenise(c, rec ? 0 : max_tokens))
            c->finish_reason = "length";
        a->completion_tokens += (long long)c->ntok;
    }
    if (rec) {
        a->replayed = 1;
        a->prompt_tokens = rec->prompt_tokens;
        a->completion_tokens = rec->completion_tokens * n;
    }
    buf_free(&all);
    buf_free(&user);
    return gen_check_size(a, err) < 0 ? (mock_answer_free(a), -1) : 0;

too_big:
    mock_fail(err, 400, "messages", "invalid_value", "the messages are too large");
fail_bufs:
    buf_free(&all);
    buf_free(&user);
fail:
    mock_answer_free(a);
    return -1;
}

/* ---- legacy completions ---- */

/* One prompt of a completions request: its text (for the hash and the replay
 * key) and its token count. */
struct gen_prompt {
    const char *text;
    size_t len;
    uint64_t hash;
    long long tokens;
};

/* Is v an array of integers (a tokenised prompt)? */
static int is_token_array(const json_t *v)
{
    size_t i;
    json_t *t;

    if (!json_is_array(v) || json_array_size(v) == 0)
        return 0;
    json_array_foreach (v, i, t) {
        if (!json_is_integer(t))
            return 0;
    }
    return 1;
}

static uint64_t hash_tokens(const json_t *v)
{
    uint64_t h = 0x7031;
    size_t i;
    json_t *t;

    json_array_foreach (v, i, t) {
        long long x = json_integer_value(t);

        h = mock_hash(&x, sizeof(x), h);
    }
    return h;
}

static void prompt_of(const json_t *v, struct gen_prompt *p)
{
    if (json_is_string(v)) {
        p->text = json_string_value(v);
        p->len = json_string_length(v);
        p->hash = mock_hash(p->text, p->len, 0);
        p->tokens = (long long)((utf8_count(p->text, p->len) + 3) / 4);
    } else {
        p->text = "";
        p->len = 0;
        p->hash = hash_tokens(v);
        p->tokens = (long long)json_array_size(v);
    }
}

/* Split the prompt field into prompts: a string, an array of strings, a
 * token array, or an array of token arrays. Caller frees *out. */
static int gen_prompts(const json_t *req, struct gen_prompt **out, size_t *np, struct mock_err *err)
{
    json_t *prompt = json_object_get(req, "prompt");
    size_t i;
    json_t *v;

    *out = NULL;
    *np = 0;
    if (prompt == NULL || json_is_null(prompt)) {
        static const char eot[] = "<|endoftext|>"; /* OpenAI's default prompt */

        *out = xcalloc(1, sizeof(**out));
        (*out)->text = eot;
        (*out)->len = sizeof(eot) - 1;
        (*out)->hash = mock_hash(eot, sizeof(eot) - 1, 0);
        (*out)->tokens = 1;
        *np = 1;
        return 0;
    }
    if (json_is_string(prompt) || is_token_array(prompt)) {
        *out = xcalloc(1, sizeof(**out));
        prompt_of(prompt, *out);
        *np = 1;
        return 0;
    }
    if (!json_is_array(prompt) || json_array_size(prompt) == 0 ||
        json_array_size(prompt) > GEN_MAX_N)
        goto bad;
    *out = xcalloc(json_array_size(prompt), sizeof(**out));
    json_array_foreach (prompt, i, v) {
        if (!json_is_string(v) && !is_token_array(v))
            goto bad;
        prompt_of(v, &(*out)[i]);
    }
    *np = json_array_size(prompt);
    return 0;
bad:
    free(*out);
    *out = NULL;
    return mock_fail(err, 400, "prompt", "invalid_value",
                    "'prompt' must be a string, an array of strings, an array of tokens or "
                    "an array of token arrays (at most %d)",
                    GEN_MAX_N);
}

int mock_gen_completion(const json_t *req, const struct mock_gen_opts *o, struct mock_answer *a,
                        struct mock_err *err)
{
    struct gen_prompt *ps = NULL;
    size_t np, k = 0;
    long long n, max_tokens, lp = -1;
    json_t *lpv = json_object_get(req, "logprobs");
    int mi = o->replay ? mock_replay_model_index(o->replay, o->model) : -1;
    int bad;

    memset(a, 0, sizeof(*a));
    a->kind = MOCK_COMPLETION;
    snprintf(a->id, sizeof(a->id), "cmpl-mock-%llu", o->seq);
    if (gen_common(req, o, a, &n, err) < 0)
        goto fail;
    max_tokens = gen_max_tokens(req, err, &bad);
    if (bad || mock_gen_get_int(req, "logprobs", 0, 5, &lp, err) < 0)
        goto fail;
    /* Legacy logprobs: an integer asks for that many alternatives. */
    if (json_is_integer(lpv)) {
        a->logprobs = 1;
        a->top_logprobs = (int)lp;
    }
    if (gen_prompts(req, &ps, &np, err) < 0)
        goto fail;
    if (np * (size_t)n > GEN_MAX_N) {
        mock_fail(err, 400, "n", "invalid_value", "prompts x n must be at most %d", GEN_MAX_N);
        goto fail;
    }
    choices_alloc(a, np * (size_t)n);
    for (size_t p = 0; p < np; p++) {
        const struct mock_replay_answer *rec = NULL;

        a->prompt_tokens += ps[p].tokens;
        if (mi >= 0 && !o->content && !o->choices) {
            rec = mock_replay_find(o->replay, mi, ps[p].text, ps[p].len);
            if (rec == NULL) {
                mock_fail(err, 404, "prompt", "replay_miss",
                         "sluice-mock has no recorded answer of model '%s' for this prompt",
                         o->model);
                goto fail;
            }
        }
        for (long long j = 0; j < n; j++, k++) {
            struct mock_choice *c = &a->choices[k];
            int r = gen_override(o, k, c, err);

            c->seed = mix64(ps[p].hash + (uint64_t)j);
            c->finish_reason = "stop";
            if (r < 0)
                goto fail;
            if (r == 0 && rec) {
                c->len = rec->content_len;
                c->text = xstrndup(rec->content, c->len);
            } else if (r == 0) {
                c->text = gen_sentence(ps[p].hash, &c->len);
            }
            if (mock_choice_tokenise(c, rec ? 0 : max_tokens))
                c->finish_reason = "length";
            a->completion_tokens += rec ? rec->completion_tokens : (long long)c->ntok;
        }
        if (rec) {
            a->replayed = 1;
            a->prompt_tokens += rec->prompt_tokens - ps[p].tokens;
        }
    }
    free(ps);
    return gen_check_size(a, err) < 0 ? (mock_answer_free(a), -1) : 0;
fail:
    free(ps);
    mock_answer_free(a);
    return -1;
}

void mock_answer_free(struct mock_answer *a)
{
    for (size_t i = 0; i < a->nchoices; i++) {
        free(a->choices[i].text);
        free(a->choices[i].starts);
        free(a->choices[i].tool_name);
    }
    free(a->choices);
    free(a->model);
    free(a->stop_sequence);
    a->choices = NULL;
    a->model = NULL;
    a->stop_sequence = NULL;
    a->nchoices = 0;
}

/* ---- logprobs ---- */

static double round6(double x)
{
    double r = floor(x * 1e6 + 0.5) / 1e6;

    return r == 0 ? 0.0 : r; /* no "-0" in the JSON */
}

/* Token i's logprob: forced, or drawn around a per-choice confidence so that
 * different prompts give different mean probabilities (between about 0.54
 * and 0.98), stable for the same prompt. */
static double gen_token_lp(const struct mock_answer *a, const struct mock_choice *c, size_t i)
{
    double conf, u;

    if (a->forced)
        return a->forced_lp;
    conf = 0.02 + (double)(c->seed % 1000) / 1000.0 * 0.6;
    u = (double)(mix64(c->seed ^ (0x9e3779b97f4a7c15ull * (i + 1))) >> 11) / 9007199254740992.0;
    return round6(-conf * 2.0 * u);
}

static json_t *bytes_array(const char *s, size_t len)
{
    json_t *arr = json_array();

    for (size_t i = 0; i < len; i++)
        json_array_append_new(arr, json_integer((unsigned char)s[i]));
    return arr;
}

static size_t tok_len(const struct mock_choice *c, size_t i)
{
    return (i + 1 < c->ntok ? c->starts[i + 1] : c->len) - c->starts[i];
}

/* Alternative j (>= 1) of token i: another word, less likely. */
static void gen_alt(const struct mock_choice *c, size_t i, int j, double lp, char *tok,
                    size_t toksz, double *alp)
{
    uint64_t x = mix64(c->seed ^ ((uint64_t)i << 8) ^ (uint64_t)j);

    snprintf(tok, toksz, " %s", gen_words[x % GEN_NWORDS]);
    *alp = round6(lp - 0.7 - 0.6 * j);
}

/* A chat logprobs.content entry for token i. */
static json_t *chat_lp_entry(const struct mock_answer *a, const struct mock_choice *c, size_t i)
{
    const char *tok = c->text + c->starts[i];
    size_t len = tok_len(c, i);
    double lp = gen_token_lp(a, c, i);
    json_t *top = json_array();

    for (int j = 0; j < a->top_logprobs; j++) {
        char alt[32];
        double alp = lp;

        if (j == 0) {
            json_array_append_new(top, json_pack("{s:s%,s:f,s:o}", "token", tok, len, "logprob", lp,
                                                 "bytes", bytes_array(tok, len)));
            continue;
        }
        gen_alt(c, i, j, lp, alt, sizeof(alt), &alp);
        json_array_append_new(top, json_pack("{s:s,s:f,s:o}", "token", alt, "logprob", alp, "bytes",
                                             bytes_array(alt, strlen(alt))));
    }
    return json_pack("{s:s%,s:f,s:o,s:o}", "token", tok, len, "logprob", lp, "bytes",
                     bytes_array(tok, len), "top_logprobs", top);
}

/* {"content":[entries of tokens t0..t1)],"refusal":null} */
static json_t *chat_logprobs(const struct mock_answer *a, const struct mock_choice *c, size_t t0,
                             size_t t1)
{
    json_t *arr = json_array();

    for (size_t i = t0; i < t1; i++)
        json_array_append_new(arr, chat_lp_entry(a, c, i));
    return json_pack("{s:o,s:n}", "content", arr, "refusal");
}

/* The legacy completions shape for tokens t0..t1. */
static json_t *legacy_logprobs(const struct mock_answer *a, const struct mock_choice *c, size_t t0,
                               size_t t1)
{
    json_t *toks = json_array(), *lps = json_array(), *offs = json_array();
    json_t *tops = a->top_logprobs > 0 ? json_array() : json_null();

    for (size_t i = t0; i < t1; i++) {
        const char *tok = c->text + c->starts[i];
        size_t len = tok_len(c, i);
        double lp = gen_token_lp(a, c, i);

        json_array_append_new(toks, json_stringn(tok, len));
        json_array_append_new(lps, json_real(lp));
        json_array_append_new(offs, json_integer((json_int_t)c->starts[i]));
        if (a->top_logprobs > 0) {
            json_t *o = json_object();
            char *key = xstrndup(tok, len);

            json_object_set_new(o, key, json_real(lp));
            free(key);
            for (int j = 1; j < a->top_logprobs; j++) {
                char alt[32];
                double alp;

                gen_alt(c, i, j, lp, alt, sizeof(alt), &alp);
                if (json_object_get(o, alt) == NULL)
                    json_object_set_new(o, alt, json_real(alp));
            }
            json_array_append_new(tops, o);
        }
    }
    return json_pack("{s:o,s:o,s:o,s:o}", "tokens", toks, "token_logprobs", lps, "top_logprobs",
                     tops, "text_offset", offs);
}

/* OpenAI's usage: prompt_tokens counts cached tokens too, and says how many
 * in prompt_tokens_details (only when some are). */
static json_t *mock_gen_usage_json(const struct mock_answer *a)
{
    long long prompt = a->prompt_tokens > a->cache_read ? a->prompt_tokens : a->cache_read;
    json_t *u = json_pack("{s:I,s:I,s:I}", "prompt_tokens", (json_int_t)prompt, "completion_tokens",
                          (json_int_t)a->completion_tokens, "total_tokens",
                          (json_int_t)(prompt + a->completion_tokens));

    if (a->cache_read > 0)
        json_object_set_new(u, "prompt_tokens_details",
                            json_pack("{s:I}", "cached_tokens", (json_int_t)a->cache_read));
    return u;
}

static json_t *tool_calls_json(const struct mock_choice *c, const char *args, size_t args_len,
                               int with_index, int head)
{
    json_t *call = json_object();
    json_t *fn = json_object();

    if (with_index)
        json_object_set_new(call, "index", json_integer(0));
    if (head) {
        json_object_set_new(call, "id", json_string(c->tool_id));
        json_object_set_new(call, "type", json_string("function"));
        json_object_set_new(fn, "name", json_string(c->tool_name));
    }
    json_object_set_new(fn, "arguments", json_stringn(args, args_len));
    json_object_set_new(call, "function", fn);
    return json_pack("[o]", call);
}

/* ---- full bodies ---- */

char *mock_render_json(const struct mock_answer *a, int truncated_json, size_t *len)
{
    json_t *body = json_object(), *choices = json_array();
    char *s;

    json_object_set_new(body, "id", json_string(a->id));
    json_object_set_new(body, "object",
                        json_string(a->kind == MOCK_CHAT ? "chat.completion" : "text_completion"));
    json_object_set_new(body, "created", json_integer(a->created));
    json_object_set_new(body, "model", json_string(a->model));
    for (size_t i = 0; i < a->nchoices; i++) {
        const struct mock_choice *c = &a->choices[i];
        json_t *ch = json_object();

        if (a->kind == MOCK_CHAT) {
            json_t *msg = json_object();

            json_object_set_new(ch, "index", json_integer((json_int_t)i));
            json_object_set_new(msg, "role", json_string("assistant"));
            if (c->tool_name) {
                json_object_set_new(msg, "content", json_null());
                json_object_set_new(msg, "refusal", json_null());
                json_object_set_new(msg, "tool_calls", tool_calls_json(c, c->text, c->len, 0, 1));
            } else {
                json_object_set_new(msg, "content", json_stringn(c->text, c->len));
                json_object_set_new(msg, "refusal", json_null());
            }
            json_object_set_new(ch, "message", msg);
            json_object_set_new(ch, "logprobs",
                                a->logprobs && !c->tool_name ? chat_logprobs(a, c, 0, c->ntok)
                                                             : json_null());
        } else {
            json_object_set_new(ch, "text", json_stringn(c->text, c->len));
            json_object_set_new(ch, "index", json_integer((json_int_t)i));
            json_object_set_new(ch, "logprobs",
                                a->logprobs ? legacy_logprobs(a, c, 0, c->ntok) : json_null());
        }
        json_object_set_new(ch, "finish_reason", json_string(c->finish_reason));
        json_array_append_new(choices, ch);
    }
    json_object_set_new(body, "choices", choices);
    json_object_set_new(body, "usage", mock_gen_usage_json(a));
    if (a->kind == MOCK_CHAT)
        json_object_set_new(body, "system_fingerprint", json_string("fp_mock"));
    s = json_dumps(body, JSON_FLAGS);
    json_decref(body);
    if (s == NULL)
        sl_panic("mock_render_json: json_dumps failed");
    *len = strlen(s);
    if (truncated_json)
        mock_json_cut(s, len, "\"choices\":["); /* inside the first choice */
    return s;
}

void mock_json_cut(char *s, size_t *len, const char *at)
{
    const char *cut = strstr(s, at);

    *len = cut ? (size_t)(cut - s) + strlen(at) + 1 : *len / 2;
    s[*len] = '\0';
}

/* ---- streams ---- */

/* Where choice c's chunks start and end: *nb+1 byte offsets. Up to `chunks`
 * groups of whole tokens; when there are fewer tokens than chunks, the text
 * is cut by characters instead, so a test asking for N chunks gets N (as long
 * as the text has N characters). Caller frees. */
size_t *mock_choice_bounds(const struct mock_choice *c, size_t chunks, size_t *nb)
{
    size_t *b;
    size_t k;

    if (c->len == 0) {
        *nb = 0;
        return NULL;
    }
    if (chunks <= c->ntok) {
        k = chunks;
        b = xmalloc((k + 1) * sizeof(*b));
        for (size_t j = 0; j < k; j++)
            b[j] = c->starts[j * c->ntok / k];
    } else {
        size_t ncp = utf8_count(c->text, c->len), cp = 0, j = 0;

        k = chunks < ncp ? chunks : ncp;
        b = xmalloc((k + 1) * sizeof(*b));
        for (size_t i = 0; i < c->len && j < k; i++) {
            if (((unsigned char)c->text[i] & 0xc0) == 0x80)
                continue;
            if (cp == j * ncp / k)
                b[j++] = i;
            cp++;
        }
    }
    b[k] = c->len;
    *nb = k;
    return b;
}

/* The first token index whose start is >= off. */
static size_t token_at(const struct mock_choice *c, size_t off, size_t from)
{
    while (from < c->ntok && c->starts[from] < off)
        from++;
    return from;
}

int mock_emit_event(struct buf *b, const char *event, const char *data, size_t len, int chunked)
{
    size_t elen = event ? strlen(event) : 0;
    int r = 0;

    if (chunked)
        r |= buf_printf(b, "%zx\r\n", len + 8 + (event ? elen + 8 : 0));
    if (event) {
        r |= buf_append(b, "event: ", 7);
        r |= buf_append(b, event, elen);
        r |= buf_append(b, "\n", 1);
    }
    r |= buf_append(b, "data: ", 6);
    r |= buf_append(b, data, len);
    r |= buf_append(b, "\n\n", 2);
    if (chunked)
        r |= buf_append(b, "\r\n", 2);
    return r ? -1 : 0;
}

/* Append one SSE event "data: <text>\n\n", framed as one chunk if chunked. */
static int emit_raw(struct buf *b, const char *text, size_t len, int chunked)
{
    return mock_emit_event(b, NULL, text, len, chunked);
}

/* Wrap one choice object in a chunk envelope and emit it; takes choice. With
 * choice NULL, emit the usage chunk ("choices":[]) instead. */
static int emit_chunk(struct buf *b, const struct mock_answer *a, json_t *choice, int chunked)
{
    json_t *o = json_object();
    char *s;
    int r;

    json_object_set_new(o, "id", json_string(a->id));
    json_object_set_new(
        o, "object",
        json_string(a->kind == MOCK_CHAT ? "chat.completion.chunk" : "text_completion"));
    json_object_set_new(o, "created", json_integer(a->created));
    json_object_set_new(o, "model", json_string(a->model));
    if (a->kind == MOCK_CHAT)
        json_object_set_new(o, "system_fingerprint", json_string("fp_mock"));
    json_object_set_new(o, "choices", choice ? json_pack("[o]", choice) : json_array());
    if (a->include_usage || choice == NULL)
        json_object_set_new(o, "usage", choice ? json_null() : mock_gen_usage_json(a));
    s = json_dumps(o, JSON_FLAGS);
    json_decref(o);
    if (s == NULL)
        sl_panic("emit_chunk: json_dumps failed");
    r = emit_raw(b, s, strlen(s), chunked);
    free(s);
    return r;
}

/* emit_chunk for a choice; a NULL choice (json_pack refusing invalid UTF-8,
 * which jansson-parsed input cannot carry) must not become a usage chunk. */
static int emit_choice(struct buf *b, const struct mock_answer *a, json_t *choice, int chunked)
{
    if (choice == NULL)
        sl_panic("mock stream: a chunk could not be built");
    return emit_chunk(b, a, choice, chunked);
}

static json_t *chat_choice(size_t index, json_t *delta, json_t *logprobs, const char *finish)
{
    return json_pack("{s:I,s:o,s:o,s:o}", "index", (json_int_t)index, "delta", delta, "logprobs",
                     logprobs ? logprobs : json_null(), "finish_reason",
                     finish ? json_string(finish) : json_null());
}

static json_t *text_choice(size_t index, const char *text, size_t len, json_t *logprobs,
                           const char *finish)
{
    return json_pack("{s:s%,s:I,s:o,s:o}", "text", text, len, "index", (json_int_t)index,
                     "logprobs", logprobs ? logprobs : json_null(), "finish_reason",
                     finish ? json_string(finish) : json_null());
}

static void step_end(struct mock_stream *s, size_t i)
{
    s->ends[i] = s->data.len;
}

/* Content chunk j of choice i, or nothing when the choice has fewer chunks. */
static int emit_content(struct buf *b, const struct mock_answer *a, size_t i, const size_t *bounds,
                        size_t nb, size_t j, size_t *tok, int chunked)
{
    const struct mock_choice *c = &a->choices[i];
    const char *p;
    size_t len, t0, t1;
    json_t *lp = NULL, *choice;

    if (j >= nb)
        return 0;
    p = c->text + bounds[j];
    len = bounds[j + 1] - bounds[j];
    t0 = *tok;
    t1 = token_at(c, bounds[j + 1], t0);
    *tok = t1;
    if (a->kind == MOCK_COMPLETION) {
        if (a->logprobs)
            lp = legacy_logprobs(a, c, t0, t1);
        choice = text_choice(i, p, len, lp, NULL);
    } else if (c->tool_name) {
        choice = chat_choice(i, json_pack("{s:o}", "tool_calls", tool_calls_json(c, p, len, 1, 0)),
                             NULL, NULL);
    } else {
        if (a->logprobs)
            lp = chat_logprobs(a, c, t0, t1);
        choice = chat_choice(i, json_pack("{s:s%}", "content", p, len), lp, NULL);
    }
    return emit_choice(b, a, choice, chunked);
}

int mock_render_stream(const struct mock_answer *a, size_t chunks, int malformed, int error_event,
                       int chunked, struct mock_stream *s)
{
    size_t **bounds = xcalloc(a->nchoices, sizeof(*bounds));
    size_t *nb = xcalloc(a->nchoices, sizeof(*nb));
    size_t *tok = xcalloc(a->nchoices, sizeof(*tok));
    size_t maxk = 0, nevents = 0;
    int r = 0;

    if (chunks == 0)
        chunks = 1;
    if (chunks > GEN_MAX_CHUNKS)
        chunks = GEN_MAX_CHUNKS;
    for (size_t i = 0; i < a->nchoices; i++) {
        bounds[i] = mock_choice_bounds(&a->choices[i], chunks, &nb[i]);
        if (nb[i] > maxk)
            maxk = nb[i];
        nevents += nb[i];
    }
    buf_init(&s->data, MOCK_STREAM_MAX);
    s->nsteps = maxk + 2;
    s->ends = xcalloc(s->nsteps, sizeof(*s->ends));
    /* Refuse before spending seconds of the loop on rendering. */
    if (nevents > GEN_MAX_EVENTS)
        r = -1;

    /* Step 0: the role chunks (chat only; legacy completions have none). */
    for (size_t i = 0; a->kind == MOCK_CHAT && i < a->nchoices && r == 0; i++) {
        const struct mock_choice *c = &a->choices[i];
        json_t *delta;

        if (c->tool_name)
            delta = json_pack("{s:s,s:n,s:o,s:n}", "role", "assistant", "content", "tool_calls",
                              tool_calls_json(c, "", 0, 1, 1), "refusal");
        else
            delta = json_pack("{s:s,s:s,s:n}", "role", "assistant", "content", "", "refusal");
        r = emit_choice(&s->data, a, chat_choice(i, delta, NULL, NULL), chunked);
    }
    if (malformed && r == 0)
        r = emit_raw(&s->data, "{not json", 9, chunked);
    step_end(s, 0);
    if (error_event) {
        /* The server failed after the stream began: an error object, then
         * the end of the body, with no [DONE]. */
        static const char e[] = "{\"error\":{\"message\":\"The server had an error while "
                                "processing your request (sluice-mock error_event)\",\"type\":"
                                "\"server_error\",\"param\":null,\"code\":null}}";

        maxk = 0;
        s->nsteps = 2;
        if (r == 0)
            r = emit_raw(&s->data, e, sizeof(e) - 1, chunked);
        if (r == 0 && chunked)
            r = buf_append(&s->data, "0\r\n\r\n", 5);
        step_end(s, 1);
        goto out;
    }

    for (size_t j = 0; j < maxk && r == 0; j++) {
        for (size_t i = 0; i < a->nchoices && r == 0; i++)
            r = emit_content(&s->data, a, i, bounds[i], nb[i], j, &tok[i], chunked);
        step_end(s, j + 1);
    }

    /* The last step: finish chunks, usage, [DONE], end of the body. */
    for (size_t i = 0; i < a->nchoices && r == 0; i++) {
        const char *fin = a->choices[i].finish_reason;

        if (a->kind == MOCK_CHAT)
            r = emit_choice(&s->data, a, chat_choice(i, json_object(), NULL, fin), chunked);
        else
            r = emit_choice(&s->data, a, text_choice(i, "", 0, NULL, fin), chunked);
    }
    if (a->include_usage && r == 0)
        r = emit_chunk(&s->data, a, NULL, chunked);
    if (r == 0)
        r = emit_raw(&s->data, "[DONE]", 6, chunked);
    if (r == 0 && chunked)
        r = buf_append(&s->data, "0\r\n\r\n", 5);
    step_end(s, s->nsteps - 1);
out:
    for (size_t i = 0; i < a->nchoices; i++)
        free(bounds[i]);
    free(bounds);
    free(nb);
    free(tok);
    if (r != 0) {
        mock_stream_free(s);
        return -1;
    }
    return 0;
}

void mock_stream_free(struct mock_stream *s)
{
    buf_free(&s->data);
    free(s->ends);
    s->ends = NULL;
    s->nsteps = 0;
}

/* ---- embeddings ---- */

static int put_char(struct buf *b, char c)
{
    return buf_append(b, &c, 1);
}

/* Standard base64 with padding. Return 0, or -1 when b is full. */
static int base64_append(struct buf *b, const unsigned char *p, size_t n)
{
    static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    char q[4];

    for (size_t i = 0; i < n; i += 3) {
        unsigned v = (unsigned)p[i] << 16;

        if (i + 1 < n)
            v |= (unsigned)p[i + 1] << 8;
        if (i + 2 < n)
            v |= p[i + 2];
        q[0] = tab[(v >> 18) & 63];
        q[1] = tab[(v >> 12) & 63];
        q[2] = i + 1 < n ? tab[(v >> 6) & 63] : '=';
        q[3] = i + 2 < n ? tab[v & 63] : '=';
        if (buf_append(b, q, 4) < 0)
            return -1;
    }
    return 0;
}

/* A deterministic unit-norm vector of dims floats from seed. */
static void gen_vector(uint64_t seed, float *v, size_t dims)
{
    double norm = 0;

    for (size_t k = 0; k < dims; k++) {
        uint64_t x = mix64(seed + 0x9e3779b97f4a7c15ull * (k + 1));
        double u = (double)(x >> 11) / 9007199254740992.0 * 2.0 - 1.0;

        v[k] = (float)u;
        norm += u * u;
    }
    norm = sqrt(norm);
    for (size_t k = 0; k < dims; k++)
        v[k] = norm > 0 ? (float)(v[k] / norm) : (k == 0 ? 1.0f : 0.0f);
}

int mock_gen_embeddings(const json_t *req, const char *model, struct buf *out, long long *tokens,
                        struct mock_err *err)
{
    json_t *input = json_object_get(req, "input");
    json_t *fmt = json_object_get(req, "encoding_format");
    json_t *one = NULL, *list;
    long long dims = EMB_DEFAULT_DIMS;
    int b64 = 0, r = 0;
    size_t n, i;
    float *vec;
    char *mstr;
    json_t *v;

    if (mock_gen_get_int(req, "dimensions", 1, EMB_MAX_DIMS, &dims, err) < 0)
        return -1;
    if (fmt && !json_is_null(fmt)) {
        if (json_is_string(fmt) && strcmp(json_string_value(fmt), "base64") == 0)
            b64 = 1;
        else if (!json_is_string(fmt) || strcmp(json_string_value(fmt), "float") != 0)
            return mock_fail(err, 400, "encoding_format", "invalid_value",
                            "'encoding_format' must be \"float\" or \"base64\"");
    }
    /* One input (a string or a token array) or a list of them. */
    if (json_is_string(input) || is_token_array(input)) {
        one = json_array();
        json_array_append(one, input);
        list = one;
    } else {
        list = input;
    }
    n = json_array_size(list);
    if (!json_is_array(list) || n == 0 || n > EMB_MAX_INPUTS) {
        json_decref(one);
        return mock_fail(err, 400, "input", "invalid_value",
                        "'input' must be a non-empty string or array (at most %d items)",
                        EMB_MAX_INPUTS);
    }
    if ((unsigned long long)n * (unsigned long long)dims > EMB_MAX_FLOATS) {
        json_decref(one);
        return mock_fail(err, 400, "dimensions", "invalid_value",
                        "inputs x dimensions must be at most %u", EMB_MAX_FLOATS);
    }
    json_array_foreach (list, i, v) {
        if ((json_is_string(v) && json_string_length(v) > 0) || is_token_array(v))
            continue;
        json_decref(one);
        return mock_fail(err, 400, "input", "invalid_value",
                        "input[%zu] must be a non-empty string or an array of tokens", i);
    }

    vec = xmalloc((size_t)dims * sizeof(*vec));
    *tokens = 0;
    r |= buf_puts(out, "{\"object\":\"list\",\"data\":[");
    json_array_foreach (list, i, v) {
        struct gen_prompt p;

        prompt_of(v, &p);
        *tokens += p.tokens > 0 ? p.tokens : 1;
        gen_vector(p.hash, vec, (size_t)dims);
        r |= buf_printf(
            out, "%s{\"object\":\"embedding\",\"index\":%zu,\"embedding\":", i ? "," : "", i);
        if (b64) {
            /* The wire format is the little-endian float32 array. */
            unsigned char *raw = xmalloc((size_t)dims * 4);

            for (long long k = 0; k < dims; k++) {
                uint32_t bits;

                memcpy(&bits, &vec[k], 4);
                raw[4 * k] = (unsigned char)bits;
                raw[4 * k + 1] = (unsigned char)(bits >> 8);
                raw[4 * k + 2] = (unsigned char)(bits >> 16);
                raw[4 * k + 3] = (unsigned char)(bits >> 24);
            }
            r |= put_char(out, '"');
            r |= base64_append(out, raw, (size_t)dims * 4);
            r |= put_char(out, '"');
            free(raw);
        } else {
            r |= put_char(out, '[');
            for (long long k = 0; k < dims; k++) {
                char num[32];
                int w = snprintf(num, sizeof(num), k ? ",%.9g" : "%.9g", (double)vec[k]);

                r |= buf_append(out, num, (size_t)w);
            }
            r |= put_char(out, ']');
        }
        r |= put_char(out, '}');
    }
    free(vec);
    json_decref(one);
    v = json_string(model);
    mstr = v ? json_dumps(v, JSON_ENCODE_ANY) : NULL;
    json_decref(v);
    r |= buf_printf(out, "],\"model\":%s,\"usage\":{\"prompt_tokens\":%lld,\"total_tokens\":%lld}}",
                    mstr ? mstr : "\"\"", *tokens, *tokens);
    free(mstr);
    if (r)
        return mock_fail(err, 500, NULL, "response_too_large",
                        "the embeddings response exceeds sluice-mock's buffer");
    return 0;
}
