/* The Stripe client against Stripe's own API simulator, stripe-mock: every request the client
 * builds must pass the simulator's validation against Stripe's OpenAPI spec. Skipped when the
 * binary is not installed. */
#include "gateway.h"
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static pid_t mock = -1;
static int port;

static int free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    bind(fd, (struct sockaddr *)&a, sizeof a);
    getsockname(fd, (struct sockaddr *)&a, &len);
    close(fd);
    return ntohs(a.sin_port);
}

static bool answers(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    bool ok = connect(fd, (struct sockaddr *)&a, sizeof a) == 0;
    close(fd);
    return ok;
}

static void start(void)
{
    if (access(ES_STRIPE_MOCK, X_OK) != 0)
        return;
    port = free_port();
    char addr[64];
    snprintf(addr, sizeof addr, "127.0.0.1:%d", port);
    mock = fork();
    if (mock == 0) {
        freopen("/dev/null", "w", stdout);
        freopen("/dev/null", "w", stderr);
        /* its HTTPS side, unused, on a port of the system's choice too: by default it takes
         * 12112 and exits when that is taken (another test's mock, a stack's role) */
        execl(ES_STRIPE_MOCK, "stripe-mock", "-http-addr", addr, "-https-addr", "127.0.0.1:0",
              (char *)NULL);
        _exit(127);
    }
    for (int i = 0; i < 200 && !answers(); i++) {
        struct timespec ts = {0, 50 * 1000000L};
        nanosleep(&ts, NULL);
    }
}

static void stop(void)
{
    if (mock > 0) {
        kill(mock, SIGTERM);
        waitpid(mock, NULL, 0);
    }
}

TestSuite(stripe_mock, .init = start, .fini = stop, .timeout = 60);

Test(stripe_mock, accepts_the_clients_charge_and_refund_requests)
{
    if (mock < 0)
        cr_skip_test("stripe-mock is not installed at " ES_STRIPE_MOCK);
    cr_assert(answers(), "stripe-mock did not start");
    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%d", port);
    es_err_t err = ES_ERR_INIT;
    gateway_stripe_config_t cfg = {
        .base_url = url, .secret_key = "sk_test_123", .timeout_ms = 5000};
    gateway_retry_t retry = {.max_attempts = 2, .backoff_ms = 10};
    gateway_t *gw = gateway_stripe_new(&cfg, &retry, &err);
    cr_assert_not_null(gw, "%s", err.msg);

    gateway_charge_t c = {.order_id = "order-1",
                          .customer_id = "cust-1",
                          .amount_minor = 2500,
                          .currency = "EUR",
                          .payment_method = gateway_test_payment_method("cust-1")};
    gateway_result_t res;
    cr_assert_eq(gateway_charge(gw, &c, &res, &err), 0, "%s", err.msg);
    /* stripe-mock validates the request and answers a fixture intent (its status is canned,
     * so only the shape is checked) */
    cr_assert_eq(res.http_status, 200, "charge: http %d: %s", res.http_status, res.reason);
    cr_assert(!strncmp(res.ref, "pi_", 3), "ref '%s'", res.ref);
    cr_assert(res.outcome == GATEWAY_OK || res.outcome == GATEWAY_DECLINED, "outcome %d",
              res.outcome);

    cr_assert_eq(gateway_refund(gw, "order-1", res.ref, &res, &err), 0, "%s", err.msg);
    cr_assert_eq(res.http_status, 200, "refund: http %d: %s", res.http_status, res.reason);
    cr_assert(!strncmp(res.ref, "re_", 3), "ref '%s'", res.ref);
    cr_assert_eq(res.outcome, GATEWAY_OK, "refund status '%s'", res.status);
    gateway_free(gw);
}

Test(stripe_mock, rejects_a_bad_key_as_permanent)
{
    if (mock < 0)
        cr_skip_test("stripe-mock is not installed at " ES_STRIPE_MOCK);
    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%d", port);
    es_err_t err = ES_ERR_INIT;
    gateway_stripe_config_t cfg = {.base_url = url, .secret_key = "not-a-key"};
    gateway_t *gw = gateway_stripe_new(&cfg, NULL, &err);
    cr_assert_not_null(gw);
    gateway_charge_t c = {.order_id = "order-2",
                          .customer_id = "c",
                          .amount_minor = 100,
                          .currency = "usd",
                          .payment_method = "pm_card_visa"};
    gateway_result_t res;
    cr_assert_eq(gateway_charge(gw, &c, &res, &err), 0);
    cr_assert_eq(res.outcome, GATEWAY_FAILED, "http %d", res.http_status);
    cr_assert_eq(res.http_status, 401);
    gateway_free(gw);
}
