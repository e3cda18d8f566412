/* conf_check.h - the generic half of gateway.conf checking: libconfig's tree
 * read through typed getters, errors as "FILE:LINE: key.path: message",
 * unknown keys with "did you mean", ranges and enums, and key tables.
 *
 * It knows nothing of sluice's keys: config.c holds the schema (a table of
 * struct conf_key per group) and builds struct config with these calls.
 *
 * Checking never stops at the first problem: each check appends a message
 * and the caller goes on, so one run shows all of a file's mistakes.
 * conf_check_done() puts the messages in file and line order.
 */
#ifndef SLUICE_CONF_CHECK_H
#define SLUICE_CONF_CHECK_H

#include <libconfig.h>
#include <stddef.h>

/* A list of human-readable errors, each "FILE:LINE: key.path: message". */
struct config_errors {
    char **msgs;
    size_t n;
};

/* The error list is a growable buffer like any other: it has a hard cap. Past
 * it we only count, and say how many were left out. */
#define CONF_MAX_ERRORS 100

/* Values echoed back in messages are quoted, escaped and cut to this many
 * bytes, so one hostile value cannot break the one-line-per-error format. */
#define CONF_QUOTE_MAX 64
#define CONF_QBUF (CONF_QUOTE_MAX * 4 + 8)

/* State of one check: where messages go. */
struct conf_check {
    const char *name; /* FILE, as the caller gave it */
    char *dir;        /* its directory: @include and relative paths (owned) */
    struct config_errors *errs;
    size_t nerrs; /* all errors, including those past CONF_MAX_ERRORS */
    /* Per message, for sorting: the file (a string libconfig keeps until
     * config_destroy, NULL = main) and the line. */
    struct conf_err_pos {
        const char *file;
        unsigned line;
    } * pos;
};

/* ---- key tables -------------------------------------------------------- *
 * One row per key of a group: the checker reads its name (known keys, "did
 * you mean"), and for a regular key its type, default and limits, into the
 * field at `off` of the group's struct (conf_read); admin's config dump and
 * the test against gateway.conf.example read the same rows. A table ends
 * with a row whose name is NULL. */
enum conf_type {
    CONF_STR,   /* char * (owned copy) */
    CONF_INT,   /* long */
    CONF_SIZE,  /* size_t, read as an integer */
    CONF_NUM,   /* double */
    CONF_BOOL,  /* int, 0 or 1 */
    CONF_ENUM,  /* int: index into `names`, read from a string */
    CONF_GROUP, /* a group { ... }: read by hand, with its own table */
    CONF_LIST,  /* a list ( ... ) or array [ ... ]: read by hand */
};

#define CONF_NO_FIELD ((size_t)-1) /* `off` of a key with no field of its own */

/* Flags of a row. */
#define CONF_HAND 0x01u    /* read by hand-written code (conf_read skips it) */
#define CONF_SECRET 0x02u  /* its value is a credential: never shown */
#define CONF_URL 0x04u     /* a URL that may carry credentials: shown redacted */
#define CONF_REFUSED 0x08u /* not a key: writing it gets `doc` as the reason */
#define CONF_OLD 0x10u     /* an old form still accepted; the dump leaves it out */
#define CONF_NODUMP 0x20u  /* the dump leaves it out (it shows the key another way) */
#define CONF_UNSET 0x40u   /* the dump leaves it out while it has its default (or is < 0) */

struct conf_key {
    const char *name;
    enum conf_type type;
    size_t off;               /* offsetof in the group's struct, or CONF_NO_FIELD */
    double def;               /* default of a number (CONF_INT, SIZE, NUM, BOOL, ENUM index) */
    const char *def_str;      /* default of a CONF_STR; NULL = none */
    double min, max;          /* inclusive range of a number; max HUGE_VAL = none */
    const char *const *names; /* CONF_ENUM: the values, NULL terminated */
    unsigned flags;
    const char *doc; /* one line; with CONF_REFUSED the reason given */
    /* CONF_GROUP: the group's own table, its fields at base + off (off 0
     * when they are fields of this struct); CONF_LIST of groups: each
     * element's table. NULL for a list of scalars or a group of free names
     * (headers). */
    const struct conf_key *sub;
};

/* The row named `name`, or NULL. */
const struct conf_key *conf_key_find(const struct conf_key *tab, const char *name);
/* The field of row k in the struct at base. k->off must be a field's. */
void *conf_field(const void *base, const struct conf_key *k);

/* ---- a check ----------------------------------------------------------- */

/* Start a check of file `name` whose messages go to errs (borrowed). */
void conf_check_init(struct conf_check *ck, const char *name, struct config_errors *errs);
/* Sort the messages (file order, then line: call before config_destroy,
 * whose strings the positions borrow), add "N more errors not shown" past
 * the cap, and free the check's own state. Returns how many errors there
 * were in all. */
size_t conf_check_done(struct conf_check *ck);

/* Append msg (taking ownership) to errs, uncounted and unsorted: for errors
 * outside any setting (a file that cannot be opened). */
void conf_errors_add(struct config_errors *errs, char *msg);
/* Report libconfig's syntax error of lc as "FILE:LINE: syntax: ...". */
void conf_syntax_error(struct conf_check *ck, const config_t *lc);

/* Record one error at setting s (its file and line; NULL = the file's
 * start). path is the key path of the enclosing element ("" at the top
 * level) and key, when not NULL, the key under it; together they form the
 * message's key path. */
void conf_err(struct conf_check *ck, const config_setting_t *s, const char *path, const char *key,
              const char *fmt, ...) __attribute__((format(printf, 5, 6)));

/* How to show file f (a setting's or libconfig's error file; NULL = the main
 * file) to a user: an @include'd file's name joined to the main file's
 * directory. Returns a new string. */
char *conf_display_file(const struct conf_check *ck, const char *f);
/* libconfig's line of s; 1 for the root group (or NULL). */
unsigned conf_line(const config_setting_t *s);
/* "FILE:LINE" of a setting, for "(first defined at ...)". Returns a new
 * string. */
char *conf_where(const struct conf_check *ck, const config_setting_t *s);
/* A relative path (weights, a CA file) is relative to the config file's
 * directory, so a config and its files can move together. Returns a new
 * string. */
char *conf_resolve_path(const struct conf_check *ck, const char *p);

/* Render s for a message into out: double-quoted, with control characters,
 * quotes and backslashes escaped, cut after CONF_QUOTE_MAX bytes. Returns
 * out. */
const char *conf_quote(char out[CONF_QBUF], const char *s);

/* Report every member of group g that is not a row of tab (or is a
 * CONF_REFUSED row), suggesting the closest row's name for a likely typo. */
void conf_keys(struct conf_check *ck, const config_setting_t *g, const char *path,
               const struct conf_key *tab);

/* Set the field of every row that has one (CONF_HAND rows too) in the
 * struct at base to the row's default, freeing a string it held: the table
 * is where defaults live. Strings are new copies. */
void conf_defaults(const struct conf_key *tab, void *base);
/* Read group g by its table: conf_keys, then each row with a field and
 * without CONF_HAND present in g into its field, checked against its type
 * and range. Fields keep their defaults (conf_defaults) when a key is absent
 * or bad; CONF_HAND rows are the caller's. */
void conf_read(struct conf_check *ck, const config_setting_t *g, const char *path,
               const struct conf_key *tab, void *base);

/* Read the row `name` of tab (it must exist and have a field) from group g
 * into its field of the struct at base, checked against its type and
 * range: for CONF_HAND rows whose code checks more. Returns as the getters
 * below do; on 0 or -1 the field is unchanged. */
int conf_read_key(struct conf_check *ck, const config_setting_t *g, const char *path,
                  const struct conf_key *tab, const char *name, void *base);

/* ---- typed getters ----------------------------------------------------- *
 * Each looks up `key` in group g. It returns 1 and sets *out when the key is
 * present and valid; 0 when it is absent (reported if `required`); -1 when it
 * is present but bad (reported). Strings are borrowed from libconfig's tree
 * and must be copied before config_destroy(). A number may be written as an
 * int or a float (an integer also as an integral float, 1e6).
 */
int conf_str(struct conf_check *ck, const config_setting_t *g, const char *path, const char *key,
             int required, const char **out);
int conf_int(struct conf_check *ck, const config_setting_t *g, const char *path, const char *key,
             int required, long min, long max, long *out);
/* max may be HUGE_VAL for "no upper bound". */
int conf_num(struct conf_check *ck, const config_setting_t *g, const char *path, const char *key,
             int required, double min, double max, double *out);
int conf_bool(struct conf_check *ck, const config_setting_t *g, const char *path, const char *key,
              int *out);
/* A string that must be one of names[0..n-1]; *out is its index. */
int conf_enum(struct conf_check *ck, const config_setting_t *g, const char *path, const char *key,
              const char *const *names, size_t n, int *out);
/* A group member; NULL when absent or not a group (reported). */
const config_setting_t *conf_group(struct conf_check *ck, const config_setting_t *g,
                                   const char *path, const char *key);
/* A list member, or with arrays_ok also an array [ ... ] (which libconfig
 * allows for scalars only). NULL when absent (reported if required) or of
 * another type (reported). */
const config_setting_t *conf_list(struct conf_check *ck, const config_setting_t *g,
                                  const char *path, const char *key, int required, int arrays_ok);

/* ---- value checks ------------------------------------------------------ */

/* 1..max bytes of printable ASCII with no spaces. */
int conf_token_ok(const char *s, size_t max);
/* Does s hold a space, a control character or DEL? */
int conf_has_ctl_or_space(const char *s);
/* scheme://host..., one of schemes (NULL terminated), with a non-empty host
 * and no spaces or control characters. */
int conf_url_ok(const char *s, const char *const *schemes);
/* HOST:PORT, HOST non-empty, an IPv6 HOST in brackets, PORT 0..65535.
 * Returns NULL, or why not. */
const char *conf_listen_check(const char *s);
/* [A-Za-z_][A-Za-z0-9_]*: the name of an environment variable. */
int conf_env_name_ok(const char *s);

#endif
