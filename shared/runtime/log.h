/*
 * log.h - one-line log records on stderr: time, level, program, message.
 * Thread-safe (one fprintf per record). Never pass secrets (tokens) to it.
 */
#ifndef TPC_LOG_H
#define TPC_LOG_H

enum log_level {
    LOG_DEBUG = 0,
    LOG_INFO,
    LOG_WARN,
    LOG_ERROR,
};

/* Sets the program name shown in each record and the lowest level printed. */
void log_init(const char *program, enum log_level min);

void log_msg(enum log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define log_debug(...) log_msg(LOG_DEBUG, __VA_ARGS__)
#define log_info(...)  log_msg(LOG_INFO, __VA_ARGS__)
#define log_warn(...)  log_msg(LOG_WARN, __VA_ARGS__)
#define log_error(...) log_msg(LOG_ERROR, __VA_ARGS__)

#endif
