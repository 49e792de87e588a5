/* options.c - see options.h. */
#include "options.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

int options_parse_u32(const char *s, uint32_t min, uint32_t max, uint32_t *out)
{
    unsigned long long v;
    char *end;

    if (!s || !*s || *s == '-')
        return -1;
    errno = 0;
    v = strtoull(s, &end, 10);
    if (errno || *end || v < min || v > max)
        return -1;
    *out = (uint32_t)v;
    return 0;
}

int options_read_token(const char *path, char *out, size_t len)
{
    FILE *f = fopen(path, "r");
    size_t n;

    if (!f || len == 0)
        return f ? (fclose(f), -1) : -1;
    n = fread(out, 1, len - 1, f);
    fclose(f);
    out[n] = '\0';
    while (n && (out[n - 1] == '\n' || out[n - 1] == '\r' || out[n - 1] == ' '))
        out[--n] = '\0';
    return 0;
}
