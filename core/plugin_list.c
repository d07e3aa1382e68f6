/*
 * `nimbus --device help`: the plugins a --device plugin=NAME would find, in
 * the order the loader searches, each loaded exactly as the loader loads it
 * so the listing shows what would really happen (refusals included).
 */
#include "plugin_list.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "device.h"

#define LIST_MAX 256 /* files per listing; a plugin folder is not that big */

int plugin_is_file(const char *name)
{
    size_t n = strlen(name);
    return n > 3 && strcmp(name + n - 3, ".so") == 0 && name[0] != '.';
}

static int by_name(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* 1 when an earlier directory already had `file` (the loader would take that one). */
static int shadowed(char **seen, size_t nseen, const char *file)
{
    for (size_t i = 0; i < nseen; i++)
        if (strcmp(seen[i], file) == 0)
            return 1;
    return 0;
}

static void show(FILE *out, const char *path, const char *file)
{
    char err[512] = "";
    const nimbus_plugin *p = plugin_load(path, NULL, err, sizeof(err));
    size_t n = strlen(file) - 3;
    if (!p) {
        fprintf(out, "  %-16.*s refused: %s\n", (int)n, file, err);
        return;
    }
    fprintf(out, "  %-16s %s (ABI %u.%u)  %s\n", p->name, p->version ? p->version : "?",
            p->abi_major, p->abi_minor, path);
    if (p->summary && p->summary[0])
        fprintf(out, "      %s\n", p->summary);
    fprintf(out, "      options: %s\n", p->options && p->options[0] ? p->options : "(none)");
    if (strlen(p->name) != n || strncmp(p->name, file, n) != 0)
        fprintf(out, "      note: load it as plugin=%s (the file name), not by its name '%s'\n",
                path, p->name);
}

int plugin_list(FILE *out, const char *const *dirs)
{
    char *seen[LIST_MAX];
    size_t nseen = 0;
    int found = 0;
    fprintf(out, "Device plugins (--device plugin=NAME[,options]; searched in this order):\n");
    for (size_t d = 0; dirs && dirs[d]; d++) {
        char real[PATH_MAX];
        const char *dir = realpath(dirs[d], real) ? real : dirs[d];
        struct dirent **ents = NULL;
        int n = scandir(dir, &ents, NULL, alphasort);
        if (n < 0) {
            fprintf(out, "%s: (%s)\n", dir, errno == ENOENT ? "does not exist" : strerror(errno));
            continue;
        }
        fprintf(out, "%s:\n", dir);
        char *files[LIST_MAX];
        size_t nf = 0;
        for (int i = 0; i < n; i++) {
            if (plugin_is_file(ents[i]->d_name) && nf < LIST_MAX)
                files[nf++] = ents[i]->d_name;
        }
        qsort(files, nf, sizeof(files[0]), by_name);
        for (size_t i = 0; i < nf; i++) {
            char path[PATH_MAX];
            if (snprintf(path, sizeof(path), "%s/%s", dir, files[i]) >= (int)sizeof(path))
                continue;
            if (shadowed(seen, nseen, files[i])) {
                fprintf(out, "  %-16.*s (hidden by the one found earlier)\n",
                        (int)(strlen(files[i]) - 3), files[i]);
                continue;
            }
            show(out, path, files[i]);
            found++;
            char *copy = nseen < LIST_MAX ? strdup(files[i]) : NULL;
            if (copy)
                seen[nseen++] = copy;
        }
        if (nf == 0)
            fprintf(out, "  (no plugins)\n");
        for (int i = 0; i < n; i++)
            free(ents[i]);
        free(ents);
    }
    for (size_t i = 0; i < nseen; i++)
        free(seen[i]);
    return found;
}
