/*
 * docs/api/nimbus-api.yaml against the endpoint table the VMM serves
 * (api_routes(), core/vmm/vmm_api.c), both ways: every route with a handler
 * is a path with its one method, every path is such a route, and the routes
 * without a handler (501) are exactly x-nimbus-not-implemented.  The
 * document keeps the regular layout its header comment describes, so a
 * line reader is enough; a layout it cannot follow is an error, not
 * something skipped.  The status codes a live request gets are checked
 * against the documented ones, and edited copies of the document must fail
 * the check, so the check is known to be able to fail.
 *
 * NIMBUS_OPENAPI_YAML in the environment points the test at another copy.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <cjson/cJSON.h>

#include "api/api_routes.h"
#include "api/api_server.h"
#include "vmm/vmm.h"

#define NAME_MAX_LEN 64
#define MAX_OPS 64
#define MAX_CODES 16
#define MAX_NOTIMPL 64
#define MAX_SCHEMAS 128
#define MAX_REFS 512

struct doc_op {
    char path[NAME_MAX_LEN];   /* "/vm.boot" */
    char method[16];           /* the first method key, "put" */
    unsigned nmethods;
    int body, body_required;   /* requestBody:, its required: true */
    int codes[MAX_CODES];
    unsigned ncodes;
};

struct doc {
    char version[32];
    char description[4096];
    int server_ok;
    struct doc_op ops[MAX_OPS];
    unsigned nops;
    char notimpl[MAX_NOTIMPL][NAME_MAX_LEN];
    unsigned nnotimpl;
    char schemas[MAX_SCHEMAS][NAME_MAX_LEN];
    unsigned nschemas;
    char refs[MAX_REFS][NAME_MAX_LEN];
    unsigned nrefs;
    unsigned problems; /* layout errors and disagreements found so far */
};

static void problem(struct doc *d, unsigned line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void problem(struct doc *d, unsigned line, const char *fmt, ...)
{
    va_list ap;
    if (line)
        fprintf(stderr, "nimbus-api.yaml:%u: ", line);
    else
        fprintf(stderr, "nimbus-api.yaml: ");
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    d->problems++;
}

static void copy_bounded(char *dst, size_t cap, const char *src, size_t n)
{
    if (n >= cap)
        n = cap - 1;
    memcpy(dst, src, n);
    dst[n] = '\0';
}

/* A scalar without its quotes. */
static void unquote(char *s)
{
    size_t n = strlen(s);
    if (n >= 2 && (s[0] == '"' || s[0] == '\'') && s[n - 1] == s[0]) {
        memmove(s, s + 1, n - 2);
        s[n - 2] = '\0';
    }
}

/*
 * One line split as "<indent>key: value" or "<indent>- item".  Returns 0
 * for a line that is neither (folded text).
 */
struct yline {
    unsigned indent;
    int item;                 /* "- ..." */
    char key[NAME_MAX_LEN];   /* unquoted */
    char value[512];          /* unquoted, trimmed; the item text for "- " */
};

static int split_line(const char *s, size_t len, struct yline *y)
{
    memset(y, 0, sizeof(*y));
    while (y->indent < len && s[y->indent] == ' ')
        y->indent++;
    const char *t = s + y->indent;
    size_t n = len - y->indent;
    if (n >= 2 && t[0] == '-' && t[1] == ' ') {
        y->item = 1;
        copy_bounded(y->value, sizeof(y->value), t + 2, n - 2);
        unquote(y->value);
        return 1;
    }
    /* A key ends at the first ": " or at a ':' that ends the line. */
    size_t k = 0;
    while (k < n && !(t[k] == ':' && (k + 1 == n || t[k + 1] == ' ')))
        k++;
    if (k == n || k == 0)
        return 0;
    copy_bounded(y->key, sizeof(y->key), t, k);
    unquote(y->key);
    size_t v = k + 1;
    while (v < n && t[v] == ' ')
        v++;
    copy_bounded(y->value, sizeof(y->value), t + v, n - v);
    unquote(y->value);
    return 1;
}

static int is_http_method(const char *k)
{
    static const char *const m[] = {"get", "put", "post", "delete", "patch",
                                    "head", "options", "trace"};
    for (size_t i = 0; i < sizeof(m) / sizeof(m[0]); i++)
        if (strcmp(k, m[i]) == 0)
            return 1;
    return 0;
}

static void note_ref(struct doc *d, unsigned ln, const char *s)
{
    const char *r = strstr(s, "$ref:");
    if (!r)
        return;
    char v[256];
    r += 5;
    while (*r == ' ')
        r++;
    copy_bounded(v, sizeof(v), r, strlen(r));
    unquote(v);
    static const char prefix[] = "#/components/schemas/";
    if (strncmp(v, prefix, sizeof(prefix) - 1) != 0) {
        problem(d, ln, "$ref '%s' is not a #/components/schemas/ reference", v);
        return;
    }
    if (d->nrefs < MAX_REFS)
        copy_bounded(d->refs[d->nrefs++], NAME_MAX_LEN, v + sizeof(prefix) - 1,
                     strlen(v + sizeof(prefix) - 1));
}

enum section { S_NONE, S_INFO, S_SERVERS, S_NOTIMPL, S_PATHS, S_COMPONENTS };
enum op_part { P_OTHER, P_BODY, P_RESPONSES };

/* Read the document's text; layout errors are counted in d->problems. */
static void parse_doc(const char *text, struct doc *d)
{
    memset(d, 0, sizeof(*d));
    enum section sec = S_NONE;
    enum op_part part = P_OTHER;
    int in_schemas = 0, in_desc = 0;
    struct doc_op *op = NULL;
    unsigned ln = 0;
    for (const char *s = text; *s;) {
        const char *e = strchr(s, '\n');
        size_t len = e ? (size_t)(e - s) : strlen(s);
        const char *line = s;
        s = e ? e + 1 : s + len;
        ln++;
        while (len && (line[len - 1] == ' ' || line[len - 1] == '\r'))
            len--;
        if (memchr(line, '\t', len)) {
            problem(d, ln, "a tab: indent with spaces only");
            continue;
        }
        size_t ind = 0;
        while (ind < len && line[ind] == ' ')
            ind++;
        if (ind == len || line[ind] == '#')
            continue;
        if (ind % 2) {
            problem(d, ln, "indented by %zu spaces: two per level", ind);
            continue;
        }
        char buf[1024];
        copy_bounded(buf, sizeof(buf), line, len);
        note_ref(d, ln, buf);
        struct yline y;
        int kv = split_line(buf, strlen(buf), &y);

        /* Folded text of info.description runs until the indent drops. */
        if (in_desc && y.indent > 2) {
            size_t have = strlen(d->description);
            snprintf(d->description + have, sizeof(d->description) - have, "%s%s",
                     have ? " " : "", buf + y.indent);
            continue;
        }
        in_desc = 0;

        if (y.indent == 0) {
            if (!kv || y.item) {
                problem(d, ln, "expected a top-level key");
                continue;
            }
            sec = strcmp(y.key, "info") == 0                       ? S_INFO
                  : strcmp(y.key, "servers") == 0                  ? S_SERVERS
                  : strcmp(y.key, "x-nimbus-not-implemented") == 0 ? S_NOTIMPL
                  : strcmp(y.key, "paths") == 0                    ? S_PATHS
                  : strcmp(y.key, "components") == 0              ? S_COMPONENTS
                                                                   : S_NONE;
            if ((sec == S_NOTIMPL || sec == S_PATHS) && y.value[0])
                problem(d, ln, "%s: one entry per line below the key, no flow style", y.key);
            continue;
        }
        switch (sec) {
        case S_INFO:
            if (y.indent == 2 && kv && strcmp(y.key, "version") == 0)
                copy_bounded(d->version, sizeof(d->version), y.value, strlen(y.value));
            if (y.indent == 2 && kv && strcmp(y.key, "description") == 0) {
                if (y.value[0] == '>' || y.value[0] == '|')
                    in_desc = 1;
                else
                    copy_bounded(d->description, sizeof(d->description), y.value,
                                 strlen(y.value));
            }
            break;
        case S_SERVERS:
            if (y.indent == 2 && y.item && strcmp(y.value, "url: http://localhost/api/v1") == 0)
                d->server_ok = 1;
            break;
        case S_NOTIMPL:
            if (y.indent != 2 || !y.item || !y.value[0]) {
                problem(d, ln, "x-nimbus-not-implemented: expected '  - name'");
                break;
            }
            for (unsigned i = 0; i < d->nnotimpl; i++)
                if (strcmp(d->notimpl[i], y.value) == 0)
                    problem(d, ln, "%s is listed twice", y.value);
            if (d->nnotimpl < MAX_NOTIMPL)
                copy_bounded(d->notimpl[d->nnotimpl++], NAME_MAX_LEN, y.value,
                             strlen(y.value));
            break;
        case S_PATHS:
            if (y.indent == 2) {
                op = NULL;
                if (!kv || y.item || y.key[0] != '/' || y.value[0]) {
                    problem(d, ln, "expected a path ('  /name:')");
                    break;
                }
                for (unsigned i = 0; i < d->nops; i++)
                    if (strcmp(d->ops[i].path, y.key) == 0)
                        problem(d, ln, "path %s appears twice", y.key);
                if (d->nops == MAX_OPS) {
                    problem(d, ln, "more than %u paths", MAX_OPS);
                    break;
                }
                op = &d->ops[d->nops++];
                copy_bounded(op->path, sizeof(op->path), y.key, strlen(y.key));
            } else if (!op) {
                problem(d, ln, "not under a path");
            } else if (y.indent == 4) {
                if (!kv || y.item || !is_http_method(y.key) || y.value[0]) {
                    problem(d, ln, "%s: expected a lower-case method ('    put:')", op->path);
                    break;
                }
                if (op->nmethods++ == 0)
                    copy_bounded(op->method, sizeof(op->method), y.key, strlen(y.key));
                part = P_OTHER;
            } else if (y.indent == 6 && kv) {
                part = strcmp(y.key, "requestBody") == 0 ? P_BODY
                       : strcmp(y.key, "responses") == 0 ? P_RESPONSES
                                                         : P_OTHER;
                op->body |= part == P_BODY;
            } else if (y.indent == 8 && part == P_RESPONSES) {
                char *end;
                long code = kv ? strtol(y.key, &end, 10) : 0;
                if (!kv || y.item || strlen(y.key) != 3 || *end || code < 100 || code > 599 ||
                    strncmp(buf + 8, "\"", 1) != 0) {
                    problem(d, ln, "%s: expected a quoted status code ('        \"204\":')",
                            op->path);
                    break;
                }
                if (op->ncodes < MAX_CODES)
                    op->codes[op->ncodes++] = (int)code;
            } else if (y.indent == 8 && part == P_BODY && kv &&
                       strcmp(y.key, "required") == 0) {
                op->body_required = strcmp(y.value, "true") == 0;
            }
            break;
        case S_COMPONENTS:
            if (y.indent == 2)
                in_schemas = kv && strcmp(y.key, "schemas") == 0;
            else if (y.indent == 4 && in_schemas && kv && d->nschemas < MAX_SCHEMAS)
                copy_bounded(d->schemas[d->nschemas++], NAME_MAX_LEN, y.key, strlen(y.key));
            break;
        case S_NONE:
            break;
        }
    }
}

static const struct doc_op *find_op(const struct doc *d, const char *route_name)
{
    for (unsigned i = 0; i < d->nops; i++)
        if (d->ops[i].path[0] == '/' && strcmp(d->ops[i].path + 1, route_name) == 0)
            return &d->ops[i];
    return NULL;
}

static int in_notimpl(const struct doc *d, const char *name)
{
    for (unsigned i = 0; i < d->nnotimpl; i++)
        if (strcmp(d->notimpl[i], name) == 0)
            return 1;
    return 0;
}

static int has_code(const struct doc_op *op, int code)
{
    for (unsigned i = 0; i < op->ncodes; i++)
        if (op->codes[i] == code)
            return 1;
    return 0;
}

static const struct api_route *route_named(const struct api_route *rt, size_t n,
                                           const char *name)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(rt[i].name, name) == 0)
            return &rt[i];
    return NULL;
}

static void check_route(struct doc *d, const struct api_route *r)
{
    const struct doc_op *op = find_op(d, r->name);
    if (!r->fn) {
        if (!in_notimpl(d, r->name))
            problem(d, 0, "%s answers 501 but is not in x-nimbus-not-implemented", r->name);
        if (op)
            problem(d, 0, "%s answers 501 but is documented as a path", r->name);
        return;
    }
    if (in_notimpl(d, r->name))
        problem(d, 0, "%s is served but listed in x-nimbus-not-implemented", r->name);
    if (!op) {
        problem(d, 0, "%s %s is served but has no path", r->method, r->name);
        return;
    }
    char lower[16];
    size_t i;
    for (i = 0; r->method[i] && i < sizeof(lower) - 1; i++)
        lower[i] = (char)(r->method[i] | 0x20);
    lower[i] = '\0';
    if (op->nmethods != 1)
        problem(d, 0, "%s has %u methods; the server takes only %s", op->path, op->nmethods,
                lower);
    else if (strcmp(op->method, lower) != 0)
        problem(d, 0, "%s is documented as %s; the server takes %s", op->path, op->method,
                lower);
    switch (r->body) {
    case API_BODY_NONE:
        if (op->body)
            problem(d, 0, "%s takes no body but documents a requestBody", op->path);
        if (!has_code(op, 400))
            problem(d, 0, "%s: 400 (the server refuses a body) is not documented", op->path);
        break;
    case API_BODY_REQUIRED:
        if (!op->body || !op->body_required)
            problem(d, 0, "%s needs a body: requestBody with 'required: true' expected",
                    op->path);
        if (!has_code(op, 400))
            problem(d, 0, "%s: 400 (the server refuses a missing body) is not documented",
                    op->path);
        break;
    case API_BODY_ANY:
        if (op->body_required)
            problem(d, 0, "%s takes an optional body but documents it as required", op->path);
        break;
    }
}

/* Everything that must agree, both ways.  Returns the number of problems. */
static unsigned check_doc(struct doc *d)
{
    size_t n;
    const struct api_route *rt = api_routes(&n);
    if (!d->version[0])
        problem(d, 0, "no info.version");
    if (!d->server_ok)
        problem(d, 0, "servers: lacks '- url: http://localhost/api/v1'");
    for (size_t i = 0; i < n; i++)
        check_route(d, &rt[i]);
    for (unsigned i = 0; i < d->nops; i++) {
        const struct doc_op *op = &d->ops[i];
        const struct api_route *r = route_named(rt, n, op->path + 1);
        if (!r)
            problem(d, 0, "%s is not an endpoint nimbus has", op->path);
        int ok2xx = 0;
        for (unsigned c = 0; c < op->ncodes; c++) {
            ok2xx |= op->codes[c] / 100 == 2;
            if (strcmp(api_status_text(op->codes[c]), "Unknown") == 0)
                problem(d, 0, "%s: %d is a status the server never sends", op->path,
                        op->codes[c]);
        }
        if (!ok2xx)
            problem(d, 0, "%s documents no success status", op->path);
    }
    for (unsigned i = 0; i < d->nnotimpl; i++)
        if (!route_named(rt, n, d->notimpl[i]))
            problem(d, 0, "x-nimbus-not-implemented: %s is not an endpoint nimbus has",
                    d->notimpl[i]);
    for (unsigned i = 0; i < d->nrefs; i++) {
        unsigned j = 0;
        while (j < d->nschemas && strcmp(d->schemas[j], d->refs[i]) != 0)
            j++;
        if (j == d->nschemas)
            problem(d, 0, "$ref to a schema that does not exist: %s", d->refs[i]);
    }
    return d->problems;
}

/* ---- fixtures ---------------------------------------------------------------- */

static char *read_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    char *buf = NULL;
    size_t len = 0, cap = 0, got;
    do {
        if (cap - len < 4096) {
            char *nb = realloc(buf, cap + 65536);
            if (!nb) {
                free(buf);
                fclose(f);
                return NULL;
            }
            buf = nb;
            cap += 65536;
        }
        got = fread(buf + len, 1, cap - len - 1, f);
        len += got;
    } while (got > 0);
    fclose(f);
    buf[len] = '\0';
    return buf;
}

static const char *yaml_path(void)
{
    const char *p = getenv("NIMBUS_OPENAPI_YAML");
    return p && *p ? p : NIMBUS_OPENAPI_YAML;
}

static int setup_text(void **state)
{
    char *t = read_file(yaml_path());
    if (!t) {
        fprintf(stderr, "cannot read %s\n", yaml_path());
        return -1;
    }
    *state = t;
    return 0;
}

static int teardown_text(void **state)
{
    free(*state);
    return 0;
}

static struct doc *parsed(const char *text)
{
    struct doc *d = calloc(1, sizeof(*d));
    assert_non_null(d);
    parse_doc(text, d);
    return d;
}

/* ---- the document as it is ---------------------------------------------------- */

static void test_document_agrees(void **state)
{
    struct doc *d = parsed(*state);
    assert_int_equal(check_doc(d), 0);
    /* The parse found the whole document, not a prefix of it. */
    size_t n, served = 0;
    const struct api_route *rt = api_routes(&n);
    for (size_t i = 0; i < n; i++)
        served += rt[i].fn != NULL;
    assert_int_equal(d->nops, served);
    assert_int_equal(d->nnotimpl, n - served);
    free(d);
}

/* A request straight to the VMM's dispatcher, with no VM created. */
static int request(struct vmm *v, const char *name, const char *method, const char *body,
                   char **resp)
{
    struct api_request r;
    memset(&r, 0, sizeof(r));
    snprintf(r.path, sizeof(r.path), "%s%s", API_PREFIX, name);
    r.method = method;
    r.body = body ? strdup(body) : NULL;
    r.body_len = body ? strlen(body) : 0;
    vmm_handle_request(v, &r);
    free(r.body);
    *resp = r.resp_body;
    return r.status;
}

/* Error bodies are ErrorList: a non-empty JSON array of strings. */
static void assert_error_list(const char *body)
{
    assert_non_null(body);
    cJSON *j = cJSON_Parse(body);
    assert_non_null(j);
    assert_true(cJSON_IsArray(j));
    assert_true(cJSON_GetArraySize(j) > 0);
    const cJSON *it;
    cJSON_ArrayForEach(it, j)
        assert_true(cJSON_IsString(it));
    cJSON_Delete(j);
}

static void expect_documented(const struct doc_op *op, int status, const char *body)
{
    if (!has_code(op, status))
        fail_msg("%s answered %d, which it does not document", op->path, status);
    if (status >= 400)
        assert_error_list(body);
}

/* What the server answers without a VM must be among the documented codes. */
static void test_live_status_documented(void **state)
{
    struct doc *d = parsed(*state);
    struct vmm v;
    memset(&v, 0, sizeof(v));
    size_t n;
    const struct api_route *rt = api_routes(&n);
    for (size_t i = 0; i < n; i++) {
        char *resp = NULL;
        const char *other = strcmp(rt[i].method, "GET") == 0 ? "PUT" : "GET";
        if (!rt[i].fn) {
            assert_int_equal(request(&v, rt[i].name, rt[i].method, NULL, &resp), 501);
            assert_error_list(resp);
            free(resp);
            continue;
        }
        const struct doc_op *op = find_op(d, rt[i].name);
        assert_non_null(op);
        /* vm.create with a body would build a VM config: only the refusals here. */
        int st = request(&v, rt[i].name, rt[i].method, NULL, &resp);
        expect_documented(op, st, resp);
        free(resp);
        st = request(&v, rt[i].name, other, NULL, &resp);
        assert_int_equal(st, 400);
        expect_documented(op, st, resp);
        free(resp);
        if (rt[i].body == API_BODY_NONE) {
            st = request(&v, rt[i].name, rt[i].method, "{}", &resp);
            assert_int_equal(st, 400);
            expect_documented(op, st, resp);
            free(resp);
        }
    }
    free(d);
}

/* info.version is the version vmm.ping reports, and the description says so. */
static void test_version_is_the_servers(void **state)
{
    struct doc *d = parsed(*state);
    struct vmm v;
    memset(&v, 0, sizeof(v));
    char *resp = NULL;
    assert_int_equal(request(&v, "vmm.ping", "GET", NULL, &resp), 200);
    cJSON *j = cJSON_Parse(resp);
    assert_non_null(j);
    const cJSON *ver = cJSON_GetObjectItemCaseSensitive(j, "version");
    assert_true(cJSON_IsString(ver));
    assert_string_equal(d->version, ver->valuestring);
    char phrase[64];
    snprintf(phrase, sizeof(phrase), "Cloud Hypervisor %s", ver->valuestring);
    if (!strstr(d->description, phrase))
        fail_msg("info.description does not say '%s'", phrase);
    cJSON_Delete(j);
    free(resp);
    free(d);
}

/* ---- edited copies must fail ---------------------------------------------------- */

/* text with the first `old` at or after the first `anchor` replaced by `repl`. */
static char *edited(const char *text, const char *anchor, const char *old, const char *repl)
{
    const char *a = anchor ? strstr(text, anchor) : text;
    assert_non_null(a);
    const char *at = strstr(a, old);
    assert_non_null(at);
    size_t pre = (size_t)(at - text), ol = strlen(old), rl = strlen(repl);
    char *out = malloc(strlen(text) - ol + rl + 1);
    assert_non_null(out);
    memcpy(out, text, pre);
    memcpy(out + pre, repl, rl);
    strcpy(out + pre + rl, at + ol);
    return out;
}

static void test_edited_copies_fail(void **state)
{
    static const struct {
        const char *what, *anchor, *old, *repl;
    } edits[] = {
        {"a served path renamed", NULL, "\n  /vm.pause:", "\n  /vm.pausing:"},
        {"a wrong method", "\n  /vm.info:", "    get:", "    put:"},
        {"a second method", "\n  /vm.boot:", "    put:", "    get:\n      summary: x\n    put:"},
        {"a 501 endpoint dropped", NULL, "\n  - vm.nmi\n", "\n"},
        {"a served endpoint listed as 501", NULL, "\n  - vm.nmi\n",
         "\n  - vm.nmi\n  - vm.boot\n"},
        {"a 501 endpoint as a path", NULL, "\npaths:\n",
         "\npaths:\n  /vm.nmi:\n    put:\n      responses:\n        \"204\":\n"},
        {"an unknown 501 name", NULL, "\n  - vm.nmi\n", "\n  - vm.nmi\n  - vm.bogus\n"},
        {"400 dropped from a bodiless route", "\n  /vm.delete:", "\"400\":", "\"401\":"},
        {"a requestBody on a bodiless route", "\n  /vm.delete:", "      responses:",
         "      requestBody:\n        required: true\n      responses:"},
        {"requestBody no longer required", "\n  /vm.create:", "required: true",
         "required: false"},
        {"requestBody gone", "\n  /vm.add-net:", "      requestBody:", "      requestBodies:"},
        {"an unquoted status code", "\n  /vm.boot:", "\"204\":", "204:"},
        {"a status the server never sends", "\n  /vm.boot:", "\"409\":", "\"418\":"},
        {"no success status", "\n  /vmm.shutdown:", "\"204\":", "\"404\":"},
        {"a dangling $ref", NULL, "schemas/VmInfo\"", "schemas/VmInfoX\""},
        {"a path indented by 3", NULL, "\n  /vm.resume:", "\n   /vm.resume:"},
        {"a path one level too deep", NULL, "\n  /vm.resume:", "\n    /vm.resume:"},
        {"a tab", NULL, "\n  /vm.resume:", "\n\t/vm.resume:"},
        {"a flow-style list", NULL, "\nx-nimbus-not-implemented:\n",
         "\nx-nimbus-not-implemented: [vm.nmi]\n"},
        {"another server", NULL, "url: http://localhost/api/v1", "url: http://localhost/v1"},
        {"no version", NULL, "  version: 5", "  versions: 5"},
    };
    for (size_t i = 0; i < sizeof(edits) / sizeof(edits[0]); i++) {
        fprintf(stderr, "-- edit: %s (expected to be reported)\n", edits[i].what);
        char *t = edited(*state, edits[i].anchor, edits[i].old, edits[i].repl);
        struct doc *d = parsed(t);
        if (check_doc(d) == 0)
            fail_msg("the check passed a copy with %s", edits[i].what);
        free(d);
        free(t);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_document_agrees, setup_text, teardown_text),
        cmocka_unit_test_setup_teardown(test_live_status_documented, setup_text,
                                        teardown_text),
        cmocka_unit_test_setup_teardown(test_version_is_the_servers, setup_text,
                                        teardown_text),
        cmocka_unit_test_setup_teardown(test_edited_copies_fail, setup_text, teardown_text),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
