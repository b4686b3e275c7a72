/* The limit of the hot GET figure of `make bench`: libh2o (the library the API serves with)
 * answering every request with one fixed body, built the way the API's loop threads are (one
 * evloop, context and SO_REUSEPORT listener per thread), with no routing, no authorization and
 * no database. Whatever the API does beyond this is the cost the figure shows.
 *
 *   eventshop-bench-ref PORT THREADS BODY_BYTES
 * serves GET of any path on 127.0.0.1:PORT with a JSON body of BODY_BYTES bytes until SIGTERM or
 * SIGINT; prints "ref: listening on 127.0.0.1:PORT" once every listener is bound. */
#include <errno.h>
#include <h2o.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

struct ref_thread {
    int fd;
    h2o_evloop_t *loop;
    h2o_context_t ctx;
    h2o_accept_ctx_t accept_ctx;
    h2o_socket_t *listener;
};

static h2o_globalconf_t config;
static char *body;
static size_t body_len;
static volatile sig_atomic_t stopping;

static void on_signal(int sig)
{
    (void)sig;
    stopping = 1;
}

/* A JSON object of exactly n bytes (n >= 16): {"pad":"xxx..."}. */
static char *fixed_body_new(size_t n)
{
    char *b = malloc(n + 1);
    if (!b)
        abort();
    memset(b, 'x', n);
    memcpy(b, "{\"pad\":\"", 8);
    memcpy(b + n - 2, "\"}", 2);
    b[n] = '\0';
    return b;
}

static int on_req(h2o_handler_t *self, h2o_req_t *req)
{
    (void)self;
    req->res.status = 200;
    req->res.reason = "OK";
    req->res.content_length = body_len; /* as the API answers: a length, not chunks */
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL,
                   H2O_STRLIT("application/json"));
    h2o_send_inline(req, body, body_len);
    return 0;
}

static void on_accept(h2o_socket_t *listener, const char *err)
{
    if (err)
        return;
    struct ref_thread *t = listener->data;
    h2o_socket_t *sock = h2o_evloop_socket_accept(listener);
    if (sock)
        h2o_accept(&t->accept_ctx, sock);
}

/* A bound, listening, non-blocking socket on 127.0.0.1:port shared by every thread; -1 and a
 * message on failure. */
static int listen_on(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0), one = 1;
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0 ||
        setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) != 0 ||
        bind(fd, (struct sockaddr *)&a, sizeof a) != 0 || listen(fd, SOMAXCONN) != 0) {
        fprintf(stderr, "ref: cannot listen on 127.0.0.1:%d: %s\n", port, strerror(errno));
        if (fd >= 0)
            close(fd);
        return -1;
    }
    return fd;
}

/* Each thread makes its own loop, context and listener socket (h2o's buffers are per thread). */
static void *thread_run(void *arg)
{
    struct ref_thread *t = arg;
    t->loop = h2o_evloop_create();
    h2o_context_init(&t->ctx, t->loop, &config);
    t->accept_ctx.ctx = &t->ctx;
    t->accept_ctx.hosts = config.hosts;
    t->listener = h2o_evloop_socket_create(t->loop, t->fd, H2O_SOCKET_FLAG_DONT_READ);
    t->listener->data = t;
    h2o_socket_read_start(t->listener, on_accept);
    while (!stopping)
        h2o_evloop_run(t->loop, 100);
    return NULL;
}

static void config_setup(void)
{
    h2o_config_init(&config);
    h2o_hostconf_t *host =
        h2o_config_register_host(&config, h2o_iovec_init(H2O_STRLIT("default")), 65535);
    h2o_pathconf_t *path = h2o_config_register_path(host, "/", 0);
    h2o_handler_t *h = h2o_create_handler(path, sizeof *h);
    h->on_req = on_req;
}

int main(int argc, char **argv)
{
    int port = argc == 4 ? atoi(argv[1]) : 0, n = argc == 4 ? atoi(argv[2]) : 0;
    long len = argc == 4 ? atol(argv[3]) : 0;
    if (port <= 0 || port > 65535 || n < 1 || n > 64 || len < 16 || len > 1 << 20) {
        fprintf(stderr, "usage: %s PORT THREADS(1-64) BODY_BYTES(16-1048576)\n", argv[0]);
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    signal(SIGTERM, on_signal);
    signal(SIGINT, on_signal);
    body_len = (size_t)len;
    body = fixed_body_new(body_len);
    config_setup();
    struct ref_thread *threads = calloc((size_t)n, sizeof *threads);
    pthread_t *ids = calloc((size_t)n, sizeof *ids);
    for (int i = 0; i < n; i++)
        if ((threads[i].fd = listen_on(port)) < 0)
            return 1;
    printf("ref: listening on 127.0.0.1:%d\n", port);
    fflush(stdout);
    for (int i = 0; i < n; i++)
        pthread_create(&ids[i], NULL, thread_run, &threads[i]);
    for (int i = 0; i < n; i++)
        pthread_join(ids[i], NULL);
    free(ids);
    free(threads);
    free(body);
    return 0;
}
