/* options.h - reading command-line values and secret files, shared by the programs. */
#ifndef TPC_OPTIONS_H
#define TPC_OPTIONS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* A decimal in [min, max] with nothing after it; 0 on success, -1 otherwise. */
int options_parse_u32(const char *s, uint32_t min, uint32_t max, uint32_t *out);
/* The same for 64 bits. */
int options_parse_u64(const char *s, uint64_t min, uint64_t max, uint64_t *out);

/* The first line of path (a token file) without trailing blanks into out; 0 or -1. Warns on
 * stderr when the file can be read by users other than its owner. */
int options_read_token(const char *path, char *out, size_t len);
/*
 * Reads a PEM file (a certificate, a key; at most 1 MiB) into *out (malloc'd, NUL-terminated).
 * secret: a private key, warned about when others can read it. 0, or -1 (*out NULL).
 */
int options_read_pem(const char *path, bool secret, char **out);

#endif
