/* Linked into ThreadSanitizer builds only (CMake option ES_TSAN). librdkafka creates its threads
 * and takes its locks through glibc's C11 <threads.h> functions, which call pthread internally,
 * past TSan's interceptors: its threads then run without TSan state and crash in the first
 * intercepted malloc, and its locks are invisible. These definitions, exported from the
 * executable, interpose glibc's for every library and route each call through the public
 * pthread function TSan intercepts. glibc's mtx_t and cnd_t hold a pthread_mutex_t and a
 * pthread_cond_t at their start, so the casts below are layout-compatible. */
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <threads.h>

static int c11_rc(int rc)
{
    return rc == 0           ? thrd_success
           : rc == ETIMEDOUT ? thrd_timedout
           : rc == EBUSY     ? thrd_busy
           : rc == ENOMEM    ? thrd_nomem
                             : thrd_error;
}

struct c11_start {
    thrd_start_t fn;
    void *arg;
};

static void *c11_trampoline(void *p)
{
    struct c11_start s = *(struct c11_start *)p;
    free(p);
    return (void *)(intptr_t)s.fn(s.arg);
}

int thrd_create(thrd_t *thr, thrd_start_t fn, void *arg)
{
    struct c11_start *s = malloc(sizeof *s);
    if (!s)
        return thrd_nomem;
    s->fn = fn;
    s->arg = arg;
    pthread_t t;
    int rc = pthread_create(&t, NULL, c11_trampoline, s);
    if (rc != 0) {
        free(s);
        return c11_rc(rc);
    }
    *thr = (thrd_t)t;
    return thrd_success;
}

int thrd_join(thrd_t thr, int *res)
{
    void *ret = NULL;
    int rc = pthread_join((pthread_t)thr, &ret);
    if (rc == 0 && res)
        *res = (int)(intptr_t)ret;
    return c11_rc(rc);
}

int thrd_detach(thrd_t thr)
{
    return c11_rc(pthread_detach((pthread_t)thr));
}

int mtx_init(mtx_t *m, int type)
{
    pthread_mutexattr_t a;
    pthread_mutexattr_init(&a);
    if (type & mtx_recursive)
        pthread_mutexattr_settype(&a, PTHREAD_MUTEX_RECURSIVE);
    int rc = pthread_mutex_init((pthread_mutex_t *)m, &a);
    pthread_mutexattr_destroy(&a);
    return c11_rc(rc);
}

int mtx_lock(mtx_t *m)
{
    return c11_rc(pthread_mutex_lock((pthread_mutex_t *)m));
}

int mtx_trylock(mtx_t *m)
{
    return c11_rc(pthread_mutex_trylock((pthread_mutex_t *)m));
}

int mtx_timedlock(mtx_t *restrict m, const struct timespec *restrict at)
{
    return c11_rc(pthread_mutex_timedlock((pthread_mutex_t *)m, at));
}

int mtx_unlock(mtx_t *m)
{
    return c11_rc(pthread_mutex_unlock((pthread_mutex_t *)m));
}

void mtx_destroy(mtx_t *m)
{
    pthread_mutex_destroy((pthread_mutex_t *)m);
}

int cnd_init(cnd_t *c)
{
    return c11_rc(pthread_cond_init((pthread_cond_t *)c, NULL));
}

int cnd_signal(cnd_t *c)
{
    return c11_rc(pthread_cond_signal((pthread_cond_t *)c));
}

int cnd_broadcast(cnd_t *c)
{
    return c11_rc(pthread_cond_broadcast((pthread_cond_t *)c));
}

int cnd_wait(cnd_t *c, mtx_t *m)
{
    return c11_rc(pthread_cond_wait((pthread_cond_t *)c, (pthread_mutex_t *)m));
}

int cnd_timedwait(cnd_t *restrict c, mtx_t *restrict m, const struct timespec *restrict at)
{
    return c11_rc(pthread_cond_timedwait((pthread_cond_t *)c, (pthread_mutex_t *)m, at));
}

void cnd_destroy(cnd_t *c)
{
    pthread_cond_destroy((pthread_cond_t *)c);
}

void call_once(once_flag *flag, void (*fn)(void))
{
    pthread_once((pthread_once_t *)flag, fn);
}
