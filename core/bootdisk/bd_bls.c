#include "bd_bls.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void copy(char *dst, size_t n, const char *s, size_t len)
{
    if (len >= n)
        len = n - 1;
    memcpy(dst, s, len);
    dst[len] = 0;
}

int bd_bls_parse(const char *text, size_t len, const char *id, struct bd_bls_entry *out)
{
    memset(out, 0, sizeof(*out));
    copy(out->id, sizeof(out->id), id, strlen(id));
    size_t i = 0;
    while (i < len) {
        size_t eol = i;
        while (eol < len && text[eol] != '\n')
            eol++;
        const char *l = text + i;
        size_t ll = eol - i;
        i = eol + 1;
        while (ll && isspace((unsigned char)*l))
            l++, ll--;
        while (ll && isspace((unsigned char)l[ll - 1]))
            ll--;
        if (!ll || *l == '#')
            continue;
        size_t kl = 0;
        while (kl < ll && !isspace((unsigned char)l[kl]))
            kl++;
        const char *v = l + kl;
        size_t vl = ll - kl;
        while (vl && isspace((unsigned char)*v))
            v++, vl--;
#define KEY(k) (kl == strlen(k) && !memcmp(l, k, kl))
        if (KEY("title"))
            copy(out->title, sizeof(out->title), v, vl);
        else if (KEY("version"))
            copy(out->version, sizeof(out->version), v, vl);
        else if (KEY("sort-key"))
            copy(out->sort_key, sizeof(out->sort_key), v, vl);
        else if (KEY("machine-id"))
            copy(out->machine_id, sizeof(out->machine_id), v, vl);
        else if (KEY("linux"))
            copy(out->linux, sizeof(out->linux), v, vl);
        else if (KEY("initrd")) {
            /* One path per line, or several on one (GRUB's blscfg takes both). */
            const char *p = v, *end = v + vl;
            while (p < end && out->ninitrd < BD_MAX_INITRD) {
                while (p < end && isspace((unsigned char)*p))
                    p++;
                const char *s = p;
                while (p < end && !isspace((unsigned char)*p))
                    p++;
                if (p > s)
                    copy(out->initrd[out->ninitrd++], BD_PATH, s, (size_t)(p - s));
            }
        } else if (KEY("options")) {
            size_t have = strlen(out->options);
            if (have && have + 1 < sizeof(out->options))
                out->options[have++] = ' ';
            copy(out->options + have, sizeof(out->options) - have, v, vl);
        }
#undef KEY
    }
    if (!out->title[0])
        copy(out->title, sizeof(out->title), out->id, strlen(out->id));
    return out->linux[0] ? 0 : -1;
}

/* Alternating runs of digits and letters; digits beat letters; '~' sorts first. */
int bd_vercmp(const char *a, const char *b)
{
    while (*a || *b) {
        while (*a && !isalnum((unsigned char)*a) && *a != '~')
            a++;
        while (*b && !isalnum((unsigned char)*b) && *b != '~')
            b++;
        if (*a == '~' || *b == '~') {
            if (*a != '~')
                return 1;
            if (*b != '~')
                return -1;
            a++, b++;
            continue;
        }
        if (!*a || !*b)
            return *a ? 1 : *b ? -1 : 0;
        int da = isdigit((unsigned char)*a), db = isdigit((unsigned char)*b);
        if (da != db)
            return da ? 1 : -1;
        const char *sa = a, *sb = b;
        if (da) {
            while (*sa == '0')
                sa++;
            while (*sb == '0')
                sb++;
            a = sa, b = sb;
            while (isdigit((unsigned char)*a))
                a++;
            while (isdigit((unsigned char)*b))
                b++;
            if (a - sa != b - sb)
                return a - sa > b - sb ? 1 : -1;
            int c = strncmp(sa, sb, (size_t)(a - sa));
            if (c)
                return c > 0 ? 1 : -1;
        } else {
            while (isalpha((unsigned char)*a))
                a++;
            while (isalpha((unsigned char)*b))
                b++;
            size_t la = (size_t)(a - sa), lb = (size_t)(b - sb);
            int c = strncmp(sa, sb, la < lb ? la : lb);
            if (c)
                return c > 0 ? 1 : -1;
            if (la != lb)
                return la > lb ? 1 : -1;
        }
    }
    return 0;
}

static int order(const void *pa, const void *pb)
{
    const struct bd_bls_entry *a = pa, *b = pb;
    /* Entries with a sort-key come first, in ascending key order. */
    if (!!a->sort_key[0] != !!b->sort_key[0])
        return a->sort_key[0] ? -1 : 1;
    int c = strcmp(a->sort_key, b->sort_key);
    if (c)
        return c;
    c = strcmp(a->machine_id, b->machine_id);
    if (c)
        return c;
    /* Newest version first; without versions, the file names decide. */
    c = bd_vercmp(b->version[0] ? b->version : b->id, a->version[0] ? a->version : a->id);
    return c;
}

/* Insertion sort: a few dozen entries, and glibc's qsort asks the kernel
 * for the machine's memory size, which the reader's sandbox refuses. */
void bd_bls_sort(struct bd_bls_list *l)
{
    static struct bd_bls_entry tmp;
    for (int i = 1; i < l->n && i < BD_MAX_BLS; i++) {
        int j = i;
        tmp = l->e[i];
        while (j > 0 && order(&l->e[j - 1], &tmp) > 0) {
            l->e[j] = l->e[j - 1];
            j--;
        }
        l->e[j] = tmp;
    }
}
