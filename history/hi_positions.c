#include "hi_positions.h"
#include "es_mem.h"
#include <ctype.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

/* Reads exactly n digits at *p into *v. */
static int hi_digits(const char **p, int n, int *v)
{
    int x = 0;
    for (int i = 0; i < n; i++, (*p)++) {
        if (!isdigit((unsigned char)**p))
            return -1;
        x = x * 10 + (**p - '0');
    }
    *v = x;
    return 0;
}

/* The zone suffix at p ("", "Z", "+HH:MM", "-HH:MM", "+HHMM") as an offset in minutes. */
static int hi_zone(const char *p, int *minutes)
{
    int h = 0, m = 0;
    *minutes = 0;
    if (!*p || !strcmp(p, "Z") || !strcmp(p, "z"))
        return 0;
    if (*p != '+' && *p != '-')
        return -1;
    int sign = *p++ == '-' ? -1 : 1;
    if (hi_digits(&p, 2, &h))
        return -1;
    if (*p == ':')
        p++;
    if (hi_digits(&p, 2, &m) || *p || h > 23 || m > 59)
        return -1;
    *minutes = sign * (h * 60 + m);
    return 0;
}

int hi_time_parse(const char *s, int64_t *ms, es_err_t *err)
{
    struct tm tm = {0};
    int y = 0, mo = 0, d = 0, h = 0, mi = 0, sec = 0, frac = 0, zone = 0;
    const char *p = s;
    if (hi_digits(&p, 4, &y) || *p++ != '-' || hi_digits(&p, 2, &mo) || *p++ != '-' ||
        hi_digits(&p, 2, &d))
        goto bad;
    if (*p == 'T' || *p == 't' || *p == ' ') {
        p++;
        if (hi_digits(&p, 2, &h) || *p++ != ':' || hi_digits(&p, 2, &mi))
            goto bad;
        if (*p == ':' && (p++, hi_digits(&p, 2, &sec)))
            goto bad;
        if (*p == '.' || *p == ',') {
            int scale = 100;
            for (p++; isdigit((unsigned char)*p); p++, scale /= 10)
                frac += scale * (*p - '0');
            if (scale == 100)
                goto bad;
        }
    }
    if (hi_zone(p, &zone) || mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || sec > 60)
        goto bad;
    tm.tm_year = y - 1900;
    tm.tm_mon = mo - 1;
    tm.tm_mday = d;
    tm.tm_hour = h;
    tm.tm_min = mi;
    tm.tm_sec = sec;
    *ms = ((int64_t)timegm(&tm) - (int64_t)zone * 60) * 1000 + frac;
    return 0;
bad:
    return es_set(err, ES_EINVAL, "'%s' is not an ISO-8601 time (YYYY-MM-DDTHH:MM:SS[.fff]Z)", s);
}

char *hi_time_format(int64_t ms, char *out)
{
    time_t t = (time_t)(ms >= 0 ? ms / 1000 : (ms - 999) / 1000);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(out, 21, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out + 19, 6, ".%03uZ", (unsigned)(ms - (int64_t)t * 1000) % 1000u);
    return out;
}

/* One "TOPIC:PARTITION=OFFSET" of length len at s into pos. */
static int hi_position_parse(const char *s, size_t len, hi_position_t *pos)
{
    char *item = xstrndup(s, len), *colon = strrchr(item, ':'), *eq = strchr(item, '=');
    char *end1 = NULL, *end2 = NULL;
    int rc = -1;
    if (!colon || !eq || eq < colon || colon == item)
        goto out;
    long p = strtol(colon + 1, &end1, 10);
    long long o = strtoll(eq + 1, &end2, 10);
    if (end1 != eq || end1 == colon + 1 || *end2 || end2 == eq + 1 || p < 0 || p > INT32_MAX ||
        o < 0)
        goto out;
    pos->topic = xstrndup(item, (size_t)(colon - item));
    pos->partition = (int32_t)p;
    pos->offset = o;
    rc = 0;
out:
    free(item);
    return rc;
}

int hi_spec_parse(const char *s, hi_spec_t *spec, es_err_t *err)
{
    memset(spec, 0, sizeof *spec);
    if (!strcmp(s, "latest"))
        return 0; /* no position named: every partition at its end */
    if (!strchr(s, '=')) {
        spec->is_time = 1;
        return hi_time_parse(s, &spec->time_ms, err);
    }
    for (const char *p = s;;) {
        size_t len = strcspn(p, ",");
        spec->pos = xrealloc(spec->pos, (size_t)(spec->n + 1) * sizeof *spec->pos);
        if (hi_position_parse(p, len, &spec->pos[spec->n])) {
            hi_spec_free(spec);
            return es_set(err, ES_EINVAL,
                          "'%.*s' is not a position (TOPIC:PARTITION=OFFSET, e.g. "
                          "catalog.events:0=42)",
                          (int)len, p);
        }
        spec->n++;
        if (!p[len])
            return 0;
        p += len + 1;
    }
}

void hi_spec_free(hi_spec_t *spec)
{
    for (int i = 0; i < spec->n; i++)
        free(spec->pos[i].topic);
    free(spec->pos);
    memset(spec, 0, sizeof *spec);
}

int64_t hi_spec_offset(const hi_spec_t *spec, const char *topic, int32_t partition, int64_t dflt)
{
    for (int i = 0; i < spec->n; i++)
        if (spec->pos[i].partition == partition && !strcmp(spec->pos[i].topic, topic))
            return spec->pos[i].offset;
    return dflt;
}

int hi_database_check(const char *name, es_err_t *err)
{
    static const char *const system[] = {"mysql", "information_schema", "performance_schema",
                                         "sys"};
    size_t n = strlen(name);
    if (n < 1 || n > 64 ||
        strspn(name, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                     "0123456789_") != n)
        return es_set(err, ES_EINVAL, "database '%s' is not 1 to 64 of [A-Za-z0-9_]", name);
    for (size_t i = 0; i < sizeof system / sizeof *system; i++)
        if (!strcasecmp(name, system[i]))
            return es_set(err, ES_EINVAL, "database '%s' is the server's own", name);
    if (!strncasecmp(name, "eventshop_", 10))
        return es_set(err, ES_EINVAL,
                      "database '%s': eventshop_* are the live databases, never an as-of's", name);
    return 0;
}
