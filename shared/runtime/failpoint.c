/* failpoint.c - see failpoint.h. */
#include "failpoint.h"

#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

bool failpoint_armed(const char *name)
{
    const char *armed = getenv("TPC_FAILPOINTS"), *p;
    size_t n = strlen(name);

    for (p = armed; p && *p; p += strcspn(p, ","), p += *p == ',')
        if (strncmp(p, name, n) == 0 && (p[n] == ',' || p[n] == '\0'))
            return true;
    return false;
}

void failpoint(const char *name)
{
    if (failpoint_armed(name)) {
        log_warn("failpoint %s: crashing now", name);
        raise(SIGKILL);
    }
}
