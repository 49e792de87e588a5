/*
 * test_loop.c - the event loop (shared/runtime/loop.h) and the HTTP server and client on it:
 * timers in order, stopped and rearmed from callbacks; messages posted from another thread,
 * in order; a watched descriptor; deferred answers, pool handlers and calls that fail, over
 * real loopback sockets. Every loop run is bounded by a guard timer.
 */
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "check.h"
#include "http_client.h"
#include "http_server.h"
#include "loop.h"

int check_failures;
int check_count;

struct seen {
    struct loop *l;
    int order[16];
    int n;
    bool timed_out;
};

static void guard_fired(void *arg)
{
    struct seen *s = arg;

    s->timed_out = true;
    loop_quit(s->l);
}

/* Runs l until it quits or ms pass (then s->timed_out). */
static void run_bounded(struct loop *l, struct seen *s, int64_t ms)
{
    struct loop_timer guard = {.fn = guard_fired, .arg = s};

    loop_timer_at(l, &guard, loop_now_ms() + ms);
    loop_run(l);
    loop_timer_stop(l, &guard);
}

/* ---- timers ---- */

struct tagged {
    struct loop_timer t;
    struct seen *s;
    int tag;
    struct loop_timer *stop; /* stopped when this one fires */
    int rearm;               /* times it rearms itself */
    bool last;
};

static void tagged_fired(void *arg)
{
    struct tagged *x = arg;

    x->s->order[x->s->n++] = x->tag;
    if (x->stop)
        loop_timer_stop(x->s->l, x->stop);
    if (x->rearm-- > 0)
        loop_timer_at(x->s->l, &x->t, loop_now_ms() + 1);
    else if (x->last)
        loop_quit(x->s->l);
}

static void test_timers(void)
{
    struct loop *l = NULL;
    struct seen s = {0};
    struct tagged a = {0}, b = {0}, c = {0}, d = {0};
    int64_t now;

    CHECK(loop_new(&l) == TPC_OK);
    s.l = l;
    now = loop_now_ms();
    a = (struct tagged){{tagged_fired, &a, 0, false, 0}, &s, 1, &c.t, 0, false};
    b = (struct tagged){{tagged_fired, &b, 0, false, 0}, &s, 2, NULL, 2, false};
    c = (struct tagged){{tagged_fired, &c, 0, false, 0}, &s, 3, NULL, 0, false};
    d = (struct tagged){{tagged_fired, &d, 0, false, 0}, &s, 4, NULL, 0, true};
    loop_timer_at(l, &d.t, now + 60);
    loop_timer_at(l, &c.t, now + 40); /* stopped by a before it is due */
    loop_timer_at(l, &b.t, now + 20); /* fires, then rearms itself twice */
    loop_timer_at(l, &a.t, now + 10);
    run_bounded(l, &s, 2000);
    CHECK(!s.timed_out);
    CHECK_EQ_INT(s.n, 5);
    CHECK_EQ_INT(s.order[0], 1);
    CHECK_EQ_INT(s.order[1], 2);
    CHECK_EQ_INT(s.order[2], 2);
    CHECK_EQ_INT(s.order[3], 2);
    CHECK_EQ_INT(s.order[4], 4);
    loop_free(l);
}

/* ---- posted messages and a watched descriptor ---- */

#define POSTS 200

struct posting;

struct post_slot {
    struct posting *p;
    int i;
};

struct posting {
    struct loop *l;
    struct loop_msg msgs[POSTS];
    struct post_slot slots[POSTS];
    int got[POSTS], n;
};

static void posted(void *arg)
{
    struct post_slot *slot = arg;
    struct posting *p = slot->p;

    p->got[p->n] = slot->i;
    if (++p->n == POSTS)
        loop_quit(p->l);
}

static void *poster(void *arg)
{
    struct posting *p = arg;
    int i;

    for (i = 0; i < POSTS; i++)
        loop_post(p->l, &p->msgs[i]);
    return NULL;
}

static void test_posts(void)
{
    static struct posting p;
    struct seen s = {0};
    pthread_t t;
    int i, in_order = 1;

    memset(&p, 0, sizeof(p));
    CHECK(loop_new(&p.l) == TPC_OK);
    s.l = p.l;
    for (i = 0; i < POSTS; i++) {
        p.slots[i] = (struct post_slot){&p, i};
        p.msgs[i].fn = posted;
        p.msgs[i].arg = &p.slots[i];
    }
    CHECK(pthread_create(&t, NULL, poster, &p) == 0);
    run_bounded(p.l, &s, 5000);
    pthread_join(t, NULL);
    CHECK(!s.timed_out);
    CHECK_EQ_INT(p.n, POSTS);
    for (i = 0; i < p.n; i++)
        in_order &= p.got[i] == i;
    CHECK(in_order);
    loop_free(p.l);
}

static void readable(void *arg, int fd, uint32_t events)
{
    struct seen *s = arg;
    char c;

    if ((events & EPOLLIN) && read(fd, &c, 1) == 1)
        s->order[s->n++] = c;
    loop_unwatch(s->l, fd);
    loop_quit(s->l);
}

static void test_watch(void)
{
    struct loop *l = NULL;
    struct seen s = {0};
    int fds[2];

    CHECK(loop_new(&l) == TPC_OK);
    CHECK(pipe(fds) == 0);
    s.l = l;
    CHECK(loop_watch(l, fds[0], EPOLLIN, readable, &s) == TPC_OK);
    CHECK(loop_watch(l, fds[0], EPOLLIN, readable, &s) == TPC_OK); /* the same again: no change */
    CHECK(write(fds[1], "x", 1) == 1);
    run_bounded(l, &s, 2000);
    CHECK(!s.timed_out);
    CHECK_EQ_INT(s.n, 1);
    CHECK_EQ_INT(s.order[0], 'x');
    close(fds[0]);
    close(fds[1]);
    loop_free(l);
}

/* ---- HTTP on the loop ---- */

#define CALLS 24

struct later_answer {
    struct loop_timer t;
    struct http_later *later;
    json_t *body;
};

static void answer_later(void *arg)
{
    struct later_answer *a = arg;

    http_answer(a->later, 200, a->body);
    free(a);
}

/* POST /later answers 5 ms later (deferred); anything else answers at once. */
static void handler(void *ctx, const struct http_request *req, struct http_response *res)
{
    struct loop *l = ctx;
    json_t *in = json_loadb(req->body, req->body_len, 0, NULL);
    json_t *out = json_pack("{s:O}", "echo", in ? in : json_null());

    json_decref(in);
    if (!strcmp(req->path, "/later")) {
        struct later_answer *a = calloc(1, sizeof(*a));

        a->t.fn = answer_later;
        a->t.arg = a;
        a->later = http_defer(req);
        a->body = out;
        loop_timer_at(l, &a->t, loop_now_ms() + 5);
        return;
    }
    http_respond(res, 200, out);
}

/* A pool handler: answers on a pool thread. */
static void pool_handler(void *ctx, const struct http_request *req, struct http_response *res)
{
    (void)ctx;
    http_respond(res, 201, json_pack("{s:s}", "path", req->path));
}

struct calls {
    struct loop *l;
    struct http_call call[CALLS + 1];
    char url[CALLS + 1][64], body[CALLS + 1][32];
    int done, ok, failed;
};

static void call_done(struct http_call *c)
{
    struct calls *k = c->arg;
    int i = (int)(c - k->call);
    json_t *r = c->err == TPC_OK ? json_loadb(c->response, c->response_len, 0, NULL) : NULL;
    json_t *echo = json_object_get(json_object_get(r, "echo"), "i");

    if (i == CALLS) /* the call to a port nobody listens on */
        k->failed += c->err != TPC_OK && c->status == 0;
    else if (c->status == 201)
        k->ok += json_string_value(json_object_get(r, "path")) != NULL;
    else
        k->ok += c->status == 200 && json_integer_value(echo) == i;
    json_decref(r);
    free(c->response);
    c->response = NULL;
    if (++k->done == CALLS + 1)
        loop_quit(k->l);
}

static void test_http(size_t pools)
{
    struct http_server_config cfg = {.address = "127.0.0.1", .max_body = 4096};
    struct http_server *srv = NULL;
    struct http_agent *agent;
    static struct calls k;
    struct seen s = {0};
    struct loop *l = NULL;
    char err[256];
    int i;

    memset(&k, 0, sizeof(k));
    CHECK(loop_new(&l) == TPC_OK);
    s.l = k.l = l;
    cfg.loop = l;
    cfg.ctx = l;
    cfg.handler = pools ? pool_handler : handler;
    cfg.n_pools = pools;
    cfg.pool_threads[0] = 3;
    CHECK(http_server_start(&cfg, &srv, err, sizeof(err)) == TPC_OK);
    agent = http_agent_new(l, "");
    CHECK(agent != NULL);
    if (!srv || !agent)
        return;
    for (i = 0; i <= CALLS; i++) {
        snprintf(k.url[i], sizeof(k.url[i]), "http://127.0.0.1:%u/%s",
                 i == CALLS ? 1u : http_server_port(srv), i % 2 ? "later" : "now");
        snprintf(k.body[i], sizeof(k.body[i]), "{\"i\": %d}", i);
        k.call[i].url = k.url[i];
        k.call[i].body = k.body[i];
        k.call[i].body_len = strlen(k.body[i]);
        k.call[i].timeout_ms = 2000;
        k.call[i].done = call_done;
        k.call[i].arg = &k;
        http_agent_post(agent, &k.call[i]);
    }
    CHECK_EQ_INT(k.done, 0); /* done never runs inside http_agent_post */
    run_bounded(l, &s, 5000);
    CHECK(!s.timed_out);
    CHECK_EQ_INT(k.ok, CALLS);
    CHECK_EQ_INT(k.failed, 1);
    http_agent_free(agent);
    http_server_stop(srv);
    loop_free(l);
}

int main(void)
{
    test_timers();
    test_posts();
    test_watch();
    test_http(0);
    test_http(1);
    printf("test_loop: %d checks, %d failed\n", check_count, check_failures);
    return check_failures != 0;
}
