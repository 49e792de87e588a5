/* log.c - see log.h. */
#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <time.h>

static const char *log_program = "tpc";
static enum log_level log_min = LOG_INFO;

void log_init(const char *program, enum log_level min)
{
    log_program = program;
    log_min = min;
}

void log_msg(enum log_level level, const char *fmt, ...)
{
    static const char *names[] = {"debug", "info", "warn", "error"};
    char line[1024], stamp[32];
    struct timespec ts;
    struct tm tm;
    va_list ap;

    if (level < log_min)
        return;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%S", &tm);
    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    fprintf(stderr, "%s.%03ldZ %-5s %s: %s\n", stamp, ts.tv_nsec / 1000000L,
            names[level <= LOG_ERROR ? level : LOG_ERROR], log_program, line);
}
