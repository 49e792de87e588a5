/* options.c - see options.h. */
#include "options.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>

int options_parse_u64(const char *s, uint64_t min, uint64_t max, uint64_t *out)
{
    unsigned long long v;
    char *end;

    if (!s || !*s || *s < '0' || *s > '9')
        return -1;
    errno = 0;
    v = strtoull(s, &end, 10);
    if (errno || *end || v < min || v > max)
        return -1;
    *out = (uint64_t)v;
    return 0;
}

int options_parse_u32(const char *s, uint32_t min, uint32_t max, uint32_t *out)
{
    uint64_t v;

    if (options_parse_u64(s, min, max, &v) != 0)
        return -1;
    *out = (uint32_t)v;
    return 0;
}

int options_read_token(const char *path, char *out, size_t len)
{
    FILE *f = fopen(path, "r");
    struct stat st;
    size_t n;

    if (!f || len == 0)
        return f ? (fclose(f), -1) : -1;
    /* A secret that others on the machine can read is no secret: said, not refused (a
     * container's files are often the user's alone anyway). */
    if (fstat(fileno(f), &st) == 0 && (st.st_mode & 077))
        fprintf(stderr,
                "warning: token file %s can be read by other users (mode %03o): chmod 600 it\n",
                path, (unsigned)(st.st_mode & 0777));
    n = fread(out, 1, len - 1, f);
    fclose(f);
    out[n] = '\0';
    while (n && (out[n - 1] == '\n' || out[n - 1] == '\r' || out[n - 1] == ' '))
        out[--n] = '\0';
    return 0;
}

int options_read_pem(const char *path, bool secret, char **out)
{
    FILE *f = fopen(path, "rb");
    struct stat st;
    char *buf = NULL;
    size_t n;

    *out = NULL;
    if (!f)
        return -1;
    if (fstat(fileno(f), &st) != 0 || st.st_size > 1024 * 1024 ||
        !(buf = malloc((size_t)st.st_size + 1))) {
        fclose(f);
        return -1;
    }
    if (secret && (st.st_mode & 077))
        fprintf(stderr,
                "warning: key file %s can be read by other users (mode %03o): chmod 600 it\n", path,
                (unsigned)(st.st_mode & 0777));
    n = fread(buf, 1, (size_t)st.st_size, f);
    fclose(f);
    buf[n] = '\0';
    *out = buf;
    return 0;
}
