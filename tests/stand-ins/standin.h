/* standin — what the local stand-ins for the outside world (eventshop-test-gateway,
 * eventshop-test-carrier) share: one HTTP loop thread on a host:port, stopped by SIGINT or
 * SIGTERM. For the stack and the tests only: never linked into a shipped role. */
#ifndef STANDIN_H
#define STANDIN_H

#include "es_http.h"
#include <stddef.h>

/* Serves routes (borrowed) on addr ("host:port", e.g. EVENTSHOP_FAKE_ADDR's value) with one loop
 * thread, so their handlers need no lock; app (borrowed) is what es_http_app() gives them. Logs
 * "<name> on <addr><about>" once listening. Returns when a signal stops it: 0, or 1 when addr is
 * not host:port or the port cannot be bound (logged). */
int standin_serve(const char *name, const char *addr, const es_http_route_t *routes, size_t n,
                  void *app, const char *about);

#endif
