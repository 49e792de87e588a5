/* loop.c - see loop.h. */
#include "loop.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <time.h>
#include <unistd.h>

#define LOOP_EVENTS 64 /* collected per wait */

struct watch {
    loop_io_fn fn;
    void *arg;
    uint32_t events; /* what epoll watches now */
    uint32_t gen; /* bumped at every loop_watch that adds and every unwatch */
    bool on;
};

struct loop {
    int ep, wake; /* the epoll set; the eventfd that posts and quit ring */
    int sigfd;    /* loop_quit_on's signals, or -1 */
    int *sig;
    pthread_t owner;
    struct watch *fds; /* indexed by descriptor, grown on demand */
    size_t n_fds;
    struct loop_timer *timers[LOOP_MAX_TIMERS];
    size_t n_timers;
    uint64_t turn; /* loop_run's iterations: a timer fires at most once per turn */
    pthread_mutex_t mu; /* posted messages and quit */
    struct loop_msg *head, *tail;
    bool quit;
};

int64_t loop_now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

enum tpc_err loop_new(struct loop **out)
{
    struct loop *l = calloc(1, sizeof(*l));
    struct epoll_event ev;

    *out = NULL;
    if (!l)
        return TPC_ERR_NOMEM;
    l->sigfd = -1;
    l->ep = epoll_create1(EPOLL_CLOEXEC);
    l->wake = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    pthread_mutex_init(&l->mu, NULL);
    l->owner = pthread_self();
    memset(&ev, 0, sizeof(ev));
    ev.events = EPOLLIN;
    ev.data.u64 = UINT64_MAX; /* the wake descriptor: no watch of its own */
    if (l->ep < 0 || l->wake < 0 || epoll_ctl(l->ep, EPOLL_CTL_ADD, l->wake, &ev) != 0) {
        loop_free(l);
        return TPC_ERR_IO;
    }
    *out = l;
    return TPC_OK;
}

void loop_free(struct loop *l)
{
    if (!l)
        return;
    if (l->ep >= 0)
        close(l->ep);
    if (l->wake >= 0)
        close(l->wake);
    if (l->sigfd >= 0)
        close(l->sigfd);
    pthread_mutex_destroy(&l->mu);
    free(l->fds);
    free(l);
}

bool loop_here(const struct loop *l)
{
    return pthread_equal(l->owner, pthread_self());
}

void loop_quit(struct loop *l)
{
    uint64_t one = 1;

    pthread_mutex_lock(&l->mu);
    l->quit = true;
    pthread_mutex_unlock(&l->mu);
    if (write(l->wake, &one, sizeof(one)) < 0 && errno != EAGAIN)
        perror("loop_quit");
}

static void on_signal(void *arg, int fd, uint32_t events)
{
    struct loop *l = arg;
    struct signalfd_siginfo si;

    (void)events;
    if (read(fd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
        *l->sig = (int)si.ssi_signo;
        loop_quit(l);
    }
}

enum tpc_err loop_quit_on(struct loop *l, const sigset_t *set, int *sig)
{
    l->sig = sig;
    l->sigfd = signalfd(-1, set, SFD_NONBLOCK | SFD_CLOEXEC);
    if (l->sigfd < 0)
        return TPC_ERR_IO;
    return loop_watch(l, l->sigfd, EPOLLIN, on_signal, l);
}

void loop_post(struct loop *l, struct loop_msg *m)
{
    uint64_t one = 1;
    bool ring;

    m->next = NULL;
    pthread_mutex_lock(&l->mu);
    ring = !l->head; /* the first message since the loop last drained rings; others ride */
    if (l->tail)
        l->tail->next = m;
    else
        l->head = m;
    l->tail = m;
    pthread_mutex_unlock(&l->mu);
    if (ring && write(l->wake, &one, sizeof(one)) < 0 && errno != EAGAIN)
        perror("loop_post");
}

enum tpc_err loop_watch(struct loop *l, int fd, uint32_t events, loop_io_fn fn, void *arg)
{
    struct epoll_event ev;
    struct watch *w;
    bool add;

    if (fd < 0 || fd >= LOOP_MAX_FDS)
        return TPC_ERR_RANGE;
    if ((size_t)fd >= l->n_fds) {
        size_t n = l->n_fds ? l->n_fds : 64;
        struct watch *bigger;

        while (n <= (size_t)fd)
            n *= 2;
        bigger = realloc(l->fds, n * sizeof(*bigger));
        if (!bigger)
            return TPC_ERR_NOMEM;
        memset(bigger + l->n_fds, 0, (n - l->n_fds) * sizeof(*bigger));
        l->fds = bigger;
        l->n_fds = n;
    }
    w = &l->fds[fd];
    add = !w->on;
    if (!add && w->events == events) { /* curl asks again for what is watched: no syscall */
        w->fn = fn;
        w->arg = arg;
        return TPC_OK;
    }
    if (add)
        w->gen++;
    memset(&ev, 0, sizeof(ev));
    ev.events = events;
    ev.data.u64 = (uint64_t)w->gen << 32 | (uint32_t)fd;
    if (epoll_ctl(l->ep, add ? EPOLL_CTL_ADD : EPOLL_CTL_MOD, fd, &ev) != 0 &&
        (add || errno != ENOENT || epoll_ctl(l->ep, EPOLL_CTL_ADD, fd, &ev) != 0))
        return TPC_ERR_IO; /* (ENOENT: closed and reused unannounced; added anew) */
    w->on = true;
    w->events = events;
    w->fn = fn;
    w->arg = arg;
    return TPC_OK;
}

void loop_unwatch(struct loop *l, int fd)
{
    if (fd < 0 || (size_t)fd >= l->n_fds || !l->fds[fd].on)
        return;
    epoll_ctl(l->ep, EPOLL_CTL_DEL, fd, NULL);
    l->fds[fd].on = false;
    l->fds[fd].gen++; /* events already collected for it are stale now */
}

void loop_timer_at(struct loop *l, struct loop_timer *t, int64_t at)
{
    t->at = at;
    if (t->armed)
        return;
    if (l->n_timers == LOOP_MAX_TIMERS) {
        fprintf(stderr, "loop: more than %d timers armed\n", LOOP_MAX_TIMERS);
        abort();
    }
    l->timers[l->n_timers++] = t;
    t->armed = true;
}

void loop_timer_stop(struct loop *l, struct loop_timer *t)
{
    size_t i;

    if (!t->armed)
        return;
    for (i = 0; i < l->n_timers; i++)
        if (l->timers[i] == t) {
            l->timers[i] = l->timers[--l->n_timers];
            break;
        }
    t->armed = false;
}

/* Runs every timer due by now, one at a time (a callback may stop or free any other timer, or
 * rearm its own: one rearmed for now or earlier waits for the next turn). */
static void run_timers(struct loop *l, int64_t now)
{
    size_t i, rounds = 0;

    for (;;) {
        struct loop_timer *t = NULL;

        for (i = 0; i < l->n_timers; i++)
            if (l->timers[i]->at <= now && l->timers[i]->fired != l->turn) {
                t = l->timers[i];
                break;
            }
        if (!t || rounds++ > LOOP_MAX_TIMERS * 4)
            return;
        l->timers[i] = l->timers[--l->n_timers];
        t->armed = false;
        t->fired = l->turn;
        t->fn(t->arg);
    }
}

/* Runs the messages posted so far; returns whether to quit. */
static bool run_posted(struct loop *l)
{
    struct loop_msg *m, *next;
    uint64_t count;
    bool quit;

    if (read(l->wake, &count, sizeof(count)) < 0 && errno != EAGAIN)
        perror("loop");
    pthread_mutex_lock(&l->mu);
    m = l->head;
    l->head = l->tail = NULL;
    quit = l->quit;
    pthread_mutex_unlock(&l->mu);
    for (; m; m = next) {
        next = m->next; /* fn may free m */
        m->fn(m->arg);
    }
    return quit;
}

bool loop_run_posted(struct loop *l, int timeout_ms)
{
    struct pollfd p = {.fd = l->wake, .events = POLLIN};
    bool any;

    pthread_mutex_lock(&l->mu);
    any = l->head != NULL;
    pthread_mutex_unlock(&l->mu);
    if (!any && poll(&p, 1, timeout_ms) <= 0)
        return false;
    run_posted(l);
    return true;
}

void loop_run(struct loop *l)
{
    struct epoll_event ev[LOOP_EVENTS];

    l->owner = pthread_self();
    for (;;) {
        int64_t now = loop_now_ms(), first = -1;
        int n, i, timeout = -1;
        size_t k;

        for (k = 0; k < l->n_timers; k++)
            if (first < 0 || l->timers[k]->at < first)
                first = l->timers[k]->at;
        if (first >= 0)
            timeout = first <= now ? 0 : (int)(first - now > 60000 ? 60000 : first - now);
        n = epoll_wait(l->ep, ev, LOOP_EVENTS, timeout);
        if (n < 0 && errno != EINTR) {
            perror("epoll_wait");
            abort();
        }
        for (i = 0; i < n; i++) {
            uint64_t d = ev[i].data.u64;
            uint32_t fd = (uint32_t)d;
            struct watch *w;

            if (d == UINT64_MAX) {
                if (run_posted(l))
                    return;
                continue;
            }
            w = fd < l->n_fds ? &l->fds[fd] : NULL;
            if (w && w->on && w->gen == (uint32_t)(d >> 32))
                w->fn(w->arg, (int)fd, ev[i].events);
        }
        l->turn++;
        run_timers(l, loop_now_ms());
        pthread_mutex_lock(&l->mu);
        if (l->quit) {
            pthread_mutex_unlock(&l->mu);
            return;
        }
        pthread_mutex_unlock(&l->mu);
    }
}
