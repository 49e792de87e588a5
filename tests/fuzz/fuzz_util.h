/*
 * fuzz_util.h - what the fuzz targets share: a failed check, and a fresh directory with a
 * database's schema file in it.
 */
#ifndef TPC_FUZZ_UTIL_H
#define TPC_FUZZ_UTIL_H

#include <stdio.h>
#include <stdlib.h>

/* A property that does not hold: libFuzzer reports the input. */
static inline void check(int ok)
{
    if (!ok)
        abort();
}

/* Makes a directory under /tmp holding schema.sql (schema); db and schema_path (64 bytes
 * each) get the database's path in it and the schema file's. */
static inline void fuzz_database_dir(const char *schema, char *db, char *schema_path)
{
    static char dir[] = "/tmp/fuzz-db-XXXXXX";
    FILE *f;

    check(mkdtemp(dir) != NULL);
    snprintf(db, 64, "%s/db", dir);
    snprintf(schema_path, 64, "%s/schema.sql", dir);
    f = fopen(schema_path, "w");
    check(f != NULL);
    fputs(schema, f);
    fclose(f);
}

#endif
