/* pj_row — see pj_row.h. A one-pass tokenizer and evaluator: statements are short and parsed at
 * each apply (a few microseconds), so there is no syntax tree to keep. */
#include "pj_row.h"
#include "es_mem.h"
#include <ctype.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define KEY_MAX 4 /* primary key columns at most */

struct col {
    char *name;
    bool is_int, is_char;
    json_t *def; /* DEFAULT literal; NULL: none (NULL) */
};

struct table {
    const char *name; /* static: the plan statement's table */
    struct col *cols;
    size_t n;
    size_t key[KEY_MAX], nkey;
    char *columns, *key_list; /* "a, b, c" */
};

struct pj_schema {
    struct table *t;
    size_t n;
};

/* ---- tokens ---- */

enum tk { T_END, T_ID, T_QMARK, T_STR, T_INT, T_PUNCT, T_BAD };

struct lex {
    const char *p;
    enum tk t;
    const char *s; /* T_ID, T_STR: the text (backticks and quotes off); T_PUNCT: the character */
    size_t n;
    long long i;
    size_t param; /* the next '?' */
    const struct pj_stmt *st;
};

static void next(struct lex *l)
{
    const char *p = l->p;
    while (isspace((unsigned char)*p))
        p++;
    l->s = p;
    l->n = 1;
    if (!*p) {
        l->t = T_END;
        l->n = 0;
    } else if (isalpha((unsigned char)*p) || *p == '_') {
        while (isalnum((unsigned char)p[l->n]) || p[l->n] == '_')
            l->n++;
        l->t = T_ID;
        p += l->n;
    } else if (*p == '`' || *p == '\'') {
        const char *end = strchr(p + 1, *p);
        if (!end || (*p == '\'' && memchr(p + 1, '\\', (size_t)(end - p - 1)))) {
            l->t = T_BAD; /* unterminated, or an escape this reader does not take */
            p += strlen(p);
        } else {
            l->t = *p == '`' ? T_ID : T_STR;
            l->s = p + 1;
            l->n = (size_t)(end - p - 1);
            p = end + 1;
            if (l->t == T_STR && *p == '\'')
                l->t = T_BAD; /* '' inside a literal */
        }
    } else if (isdigit((unsigned char)*p)) {
        char *end;
        l->i = strtoll(p, &end, 10);
        l->t = T_INT;
        l->n = (size_t)(end - p);
        p = end;
    } else {
        l->t = *p == '?' ? T_QMARK : T_PUNCT;
        p++;
    }
    l->p = p;
}

static bool is_kw(const struct lex *l, const char *kw)
{
    return l->t == T_ID && strlen(kw) == l->n && !strncasecmp(l->s, kw, l->n);
}

static bool is_punct(const struct lex *l, char c)
{
    return l->t == T_PUNCT && *l->s == c;
}

static int syntax(const struct lex *l, es_err_t *err)
{
    return es_set(err, ES_EINVAL, "sql not understood near '%.24s'", l->s);
}

static int expect_kw(struct lex *l, const char *kw, es_err_t *err)
{
    if (!is_kw(l, kw))
        return syntax(l, err);
    next(l);
    return 0;
}

static int expect_punct(struct lex *l, char c, es_err_t *err)
{
    if (!is_punct(l, c))
        return syntax(l, err);
    next(l);
    return 0;
}

/* ---- values ---- */

static size_t trimmed_len(const char *s, size_t n)
{
    while (n && s[n - 1] == ' ')
        n--;
    return n;
}

/* <0, 0, >0 as the key columns order: integers by value, strings as _bin with PAD SPACE. */
static int value_cmp(const json_t *a, const json_t *b)
{
    if (json_is_integer(a) && json_is_integer(b)) {
        json_int_t x = json_integer_value(a), y = json_integer_value(b);
        return (x > y) - (x < y);
    }
    if (json_is_string(a) && json_is_string(b)) {
        size_t na = trimmed_len(json_string_value(a), json_string_length(a));
        size_t nb = trimmed_len(json_string_value(b), json_string_length(b));
        int c = memcmp(json_string_value(a), json_string_value(b), na < nb ? na : nb);
        return c ? c : (na > nb) - (na < nb);
    }
    return json_is_null(a) ? (json_is_null(b) ? 0 : -1) : 1;
}

/* SQL '=': NULL equals nothing; an integer and a string compare as numbers. */
static bool sql_eq(const json_t *a, const json_t *b)
{
    if (!a || !b || json_is_null(a) || json_is_null(b))
        return false;
    if (json_is_integer(a) != json_is_integer(b)) {
        const json_t *s = json_is_string(a) ? a : b, *i = json_is_string(a) ? b : a;
        return strtoll(json_string_value(s), NULL, 10) == json_integer_value(i);
    }
    return value_cmp(a, b) == 0;
}

/* v (stolen) as column c stores and reads it back (new reference). */
static json_t *coerce(const struct col *c, json_t *v)
{
    json_t *out = v;
    if (json_is_null(v))
        return v;
    if (c->is_int && json_is_string(v)) {
        out = json_integer(strtoll(json_string_value(v), NULL, 10));
    } else if (!c->is_int && json_is_integer(v)) {
        char buf[32];
        snprintf(buf, sizeof buf, "%lld", (long long)json_integer_value(v));
        out = json_string(buf);
    } else if (c->is_char && json_is_string(v)) {
        out = json_stringn(json_string_value(v),
                           trimmed_len(json_string_value(v), json_string_length(v)));
    }
    if (out != v)
        json_decref(v);
    return out;
}

static const struct col *col_find(const struct table *t, const char *name, size_t n)
{
    for (size_t i = 0; i < t->n; i++)
        if (strlen(t->cols[i].name) == n && !strncasecmp(t->cols[i].name, name, n))
            return &t->cols[i];
    return NULL;
}

/* ---- expressions ---- */

/* Where column references read: the row being changed and the row an INSERT proposed. */
struct scope {
    const struct table *t;
    const json_t *row;    /* NULL: columns read as NULL */
    const json_t *values; /* VALUES(c); NULL: NULL */
};

static json_t *expr(struct lex *l, const struct scope *sc, es_err_t *err);

static json_t *param(struct lex *l, es_err_t *err)
{
    if (l->param >= l->st->n) {
        es_set(err, ES_EINVAL, "sql has more '?' than its %zu parameters", l->st->n);
        return NULL;
    }
    const es_db_val_t *v = &l->st->params[l->param++];
    next(l);
    if (v->type == ES_DB_STR)
        return json_string(v->s);
    return v->type == ES_DB_INT ? json_integer(v->i) : json_null();
}

/* A column of the scope's table (the name token current), read from row (NULL: SQL NULL). */
static json_t *column(struct lex *l, const struct scope *sc, const json_t *row, es_err_t *err)
{
    const struct col *c = col_find(sc->t, l->s, l->n);
    if (!c) {
        es_set(err, ES_EINVAL, "no column '%.*s' in %s", (int)l->n, l->s, sc->t->name);
        return NULL;
    }
    next(l);
    json_t *v = row ? json_object_get(row, c->name) : NULL;
    return v ? json_incref(v) : json_null();
}

static json_t *if_call(struct lex *l, const struct scope *sc, es_err_t *err)
{
    json_t *a = NULL, *b = NULL, *yes = NULL, *no = NULL, *out = NULL;
    if (expect_punct(l, '(', err) || !(a = expr(l, sc, err)) || expect_punct(l, '=', err) ||
        !(b = expr(l, sc, err)) || expect_punct(l, ',', err) || !(yes = expr(l, sc, err)) ||
        expect_punct(l, ',', err) || !(no = expr(l, sc, err)) || expect_punct(l, ')', err))
        goto out;
    out = json_incref(sql_eq(a, b) ? yes : no);
out:
    json_decref(a);
    json_decref(b);
    json_decref(yes);
    json_decref(no);
    return out;
}

static json_t *primary(struct lex *l, const struct scope *sc, es_err_t *err)
{
    json_t *v;
    switch (l->t) {
    case T_QMARK:
        return param(l, err);
    case T_STR:
        v = json_stringn(l->s, l->n);
        next(l);
        return v;
    case T_INT:
        v = json_integer(l->i);
        next(l);
        return v;
    case T_ID:
        if (is_kw(l, "NULL")) {
            next(l);
            return json_null();
        }
        if (is_kw(l, "IF")) {
            next(l);
            return if_call(l, sc, err);
        }
        if (is_kw(l, "VALUES")) {
            next(l);
            if (expect_punct(l, '(', err) || l->t != T_ID)
                return syntax(l, err), NULL;
            v = column(l, sc, sc->values, err);
            if (v && expect_punct(l, ')', err)) {
                json_decref(v);
                return NULL;
            }
            return v;
        }
        return column(l, sc, sc->row, err);
    default:
        if (is_punct(l, '(')) {
            next(l);
            v = expr(l, sc, err);
            if (v && expect_punct(l, ')', err)) {
                json_decref(v);
                return NULL;
            }
            return v;
        }
        syntax(l, err);
        return NULL;
    }
}

static json_t *expr(struct lex *l, const struct scope *sc, es_err_t *err)
{
    json_t *v = primary(l, sc, err);
    while (v && (is_punct(l, '+') || is_punct(l, '-'))) {
        int sign = *l->s == '+' ? 1 : -1;
        next(l);
        json_t *w = primary(l, sc, err);
        if (!w) {
            json_decref(v);
            return NULL;
        }
        json_t *sum;
        if (json_is_null(v) || json_is_null(w))
            sum = json_null();
        else if (json_is_integer(v) && json_is_integer(w))
            sum = json_integer(json_integer_value(v) + sign * json_integer_value(w));
        else
            sum = (es_set(err, ES_EINVAL, "arithmetic on text is not supported"), NULL);
        json_decref(v);
        json_decref(w);
        v = sum;
    }
    return v;
}

/* ---- statements ---- */

/* "c = e, ..." until a token that is not a comma after an assignment, each assigned into row at
 * once (the next ones see it). */
static int assignments(struct lex *l, const struct scope *sc, json_t *row, es_err_t *err)
{
    for (;;) {
        const struct col *c = l->t == T_ID ? col_find(sc->t, l->s, l->n) : NULL;
        if (!c)
            return l->t == T_ID ? es_set(err, ES_EINVAL, "no column '%.*s' in %s", (int)l->n, l->s,
                                         sc->t->name)
                                : syntax(l, err);
        next(l);
        if (expect_punct(l, '=', err))
            return -1;
        json_t *v = expr(l, sc, err);
        if (!v)
            return -1;
        if (row)
            json_object_set_new(row, c->name, coerce(c, v));
        else
            json_decref(v);
        if (!is_punct(l, ','))
            return 0;
        next(l);
    }
}

static int key_cmp(const struct table *t, const json_t *a, const json_t *b)
{
    for (size_t k = 0; k < t->nkey; k++) {
        const char *name = t->cols[t->key[k]].name;
        int c = value_cmp(json_object_get(a, name), json_object_get(b, name));
        if (c)
            return c;
    }
    return 0;
}

static bool key_eq(const struct table *t, const json_t *a, const json_t *b)
{
    for (size_t k = 0; k < t->nkey; k++) {
        const char *name = t->cols[t->key[k]].name;
        if (!sql_eq(json_object_get(a, name), json_object_get(b, name)))
            return false;
    }
    return true;
}

/* The row INSERT proposes (new): every column at its default, then the listed ones. */
static json_t *insert_values(struct lex *l, const struct table *t, es_err_t *err)
{
    const struct col *cols[64];
    size_t n = 0;
    json_t *row = json_object();
    for (size_t i = 0; i < t->n; i++)
        json_object_set_new(row, t->cols[i].name,
                            t->cols[i].def ? json_incref(t->cols[i].def) : json_null());
    struct scope sc = {t, NULL, NULL};
    if (expect_punct(l, '(', err))
        goto fail;
    do {
        if (n == 64 || l->t != T_ID || !(cols[n++] = col_find(t, l->s, l->n))) {
            es_set(err, ES_EINVAL, "insert into %s: column '%.*s' unknown", t->name, (int)l->n,
                   l->s);
            goto fail;
        }
        next(l);
    } while (is_punct(l, ',') && (next(l), true));
    if (expect_punct(l, ')', err) || expect_kw(l, "VALUES", err) || expect_punct(l, '(', err))
        goto fail;
    for (size_t i = 0; i < n; i++) {
        json_t *v = (i == 0 || !expect_punct(l, ',', err)) ? expr(l, &sc, err) : NULL;
        if (!v)
            goto fail;
        json_object_set_new(row, cols[i]->name, coerce(cols[i], v));
    }
    if (!expect_punct(l, ')', err))
        return row;
fail:
    json_decref(row);
    return NULL;
}

static int run_insert(struct lex *l, const struct table *t, json_t *rows, es_err_t *err)
{
    bool ignore = is_kw(l, "IGNORE");
    if (ignore)
        next(l);
    if (expect_kw(l, "INTO", err) || l->t != T_ID)
        return l->t == T_ID ? -1 : syntax(l, err);
    next(l);
    json_t *values = insert_values(l, t, err);
    if (!values)
        return -1;
    size_t i, at = json_array_size(rows);
    json_t *row, *dup = NULL;
    json_array_foreach(rows, i, row)
    {
        if (key_eq(t, row, values))
            dup = row;
        if (at == json_array_size(rows) && key_cmp(t, row, values) > 0)
            at = i;
    }
    int rc = 0;
    if (!dup) {
        json_array_insert(rows, at, values);
    } else if (is_kw(l, "ON")) {
        next(l);
        struct scope sc = {t, dup, values};
        rc = expect_kw(l, "DUPLICATE", err) || expect_kw(l, "KEY", err) ||
                     expect_kw(l, "UPDATE", err) || assignments(l, &sc, dup, err)
                 ? -1
                 : 0;
    } else if (!ignore) {
        rc = es_set(err, ES_ECONFLICT, "insert into %s: duplicate key", t->name);
    }
    json_decref(values);
    return rc;
}

/* The WHERE's "c = e AND ..." as (column, value) pairs: a new object. */
static json_t *where(struct lex *l, const struct table *t, es_err_t *err)
{
    json_t *conds = json_object();
    struct scope sc = {t, NULL, NULL};
    if (expect_kw(l, "WHERE", err))
        goto fail;
    for (;;) {
        const struct col *c = l->t == T_ID ? col_find(t, l->s, l->n) : NULL;
        if (!c) {
            syntax(l, err);
            goto fail;
        }
        next(l);
        json_t *v = expect_punct(l, '=', err) ? NULL : expr(l, &sc, err);
        if (!v)
            goto fail;
        json_object_set_new(conds, c->name, v);
        if (!is_kw(l, "AND"))
            break;
        next(l);
    }
    if (l->t == T_END)
        return conds;
    syntax(l, err);
fail:
    json_decref(conds);
    return NULL;
}

static int run_update(struct lex *l, const struct table *t, json_t *rows, long long *affected,
                      es_err_t *err)
{
    if (l->t != T_ID)
        return syntax(l, err);
    next(l);
    if (expect_kw(l, "SET", err))
        return -1;
    struct lex set = *l; /* the SET list is run again on each row that matches */
    struct scope dry = {t, NULL, NULL};
    if (assignments(l, &dry, NULL, err))
        return -1;
    json_t *conds = where(l, t, err);
    if (!conds)
        return -1;
    size_t i;
    json_t *row;
    int rc = 0;
    json_array_foreach(rows, i, row)
    {
        const char *k;
        json_t *v;
        bool match = true;
        json_object_foreach(conds, k, v)
        {
            match = match && sql_eq(json_object_get(row, k), v);
        }
        if (!match)
            continue;
        struct lex again = set;
        struct scope sc = {t, row, NULL};
        if ((rc = assignments(&again, &sc, row, err)))
            break;
        (*affected)++;
    }
    json_decref(conds);
    return rc;
}

static const struct table *table_find(const pj_schema_t *s, const char *name)
{
    for (size_t i = 0; s && i < s->n; i++)
        if (!strcmp(s->t[i].name, name))
            return &s->t[i];
    return NULL;
}

int pj_row_apply(const pj_schema_t *s, json_t *tables, const pj_plan_t *plan, es_err_t *err)
{
    for (size_t i = 0; i < pj_plan_len(plan); i++) {
        const struct pj_stmt *st = pj_plan_stmt(plan, i);
        json_t *rows = json_object_get(tables, st->table);
        const struct table *t = table_find(s, st->table);
        if (!json_is_array(rows))
            continue; /* a table not held */
        if (!t)
            return es_set(err, ES_EINVAL, "no table '%s' in the projection's ddl", st->table);
        struct lex l = {.p = st->sql, .st = st};
        long long affected = 0;
        int rc;
        next(&l);
        if (is_kw(&l, "INSERT")) {
            next(&l);
            rc = run_insert(&l, t, rows, err);
        } else if (is_kw(&l, "UPDATE")) {
            next(&l);
            rc = run_update(&l, t, rows, &affected, err);
        } else {
            rc = syntax(&l, err);
        }
        if (rc)
            return -1;
        if (st->must_match && affected == 0)
            return es_set(err, ES_ENOTFOUND, "%s is not in the read model", pj_plan_subject(plan));
    }
    return 0;
}

/* ---- the schema, from the DDL ---- */

/* Skips tokens to the next ',' or ')' at depth 0 (not consumed). */
static void skip_item(struct lex *l)
{
    int depth = 0;
    while (l->t != T_END && l->t != T_BAD &&
           !(depth == 0 && (is_punct(l, ',') || is_punct(l, ')')))) {
        depth += is_punct(l, '(') - is_punct(l, ')');
        next(l);
    }
}

static int column_def(struct lex *l, struct table *t, es_err_t *err)
{
    t->cols = xrealloc(t->cols, (t->n + 1) * sizeof *t->cols);
    struct col *c = &t->cols[t->n++];
    *c = (struct col){.name = xstrndup(l->s, l->n)};
    next(l);
    if (l->t != T_ID)
        return syntax(l, err);
    c->is_int = is_kw(l, "BIGINT") || is_kw(l, "INT") || is_kw(l, "TINYINT") ||
                is_kw(l, "SMALLINT") || is_kw(l, "MEDIUMINT") || is_kw(l, "INTEGER");
    c->is_char = is_kw(l, "CHAR");
    int depth = 0;
    while (l->t != T_END && !(depth == 0 && (is_punct(l, ',') || is_punct(l, ')')))) {
        depth += is_punct(l, '(') - is_punct(l, ')');
        bool def = depth == 0 && is_kw(l, "DEFAULT");
        next(l);
        if (def && (l->t == T_STR || l->t == T_INT || is_kw(l, "NULL"))) {
            json_t *v = l->t == T_STR   ? json_stringn(l->s, l->n)
                        : l->t == T_INT ? json_integer(l->i)
                                        : json_null();
            c->def = coerce(c, v);
            next(l);
        }
    }
    return 0;
}

static int key_def(struct lex *l, struct table *t, es_err_t *err)
{
    next(l); /* PRIMARY */
    if (expect_kw(l, "KEY", err) || expect_punct(l, '(', err))
        return -1;
    while (l->t == T_ID && t->nkey < KEY_MAX) {
        const struct col *c = col_find(t, l->s, l->n);
        if (!c)
            return syntax(l, err);
        t->key[t->nkey++] = (size_t)(c - t->cols);
        next(l);
        if (is_punct(l, ','))
            next(l);
    }
    return expect_punct(l, ')', err);
}

static char *join_names(const struct table *t, const size_t *idx, size_t n)
{
    size_t len = 1;
    for (size_t i = 0; i < n; i++)
        len += strlen(t->cols[idx ? idx[i] : i].name) + 2;
    char *s = xmalloc(len);
    s[0] = '\0';
    for (size_t i = 0; i < n; i++) {
        strcat(s, i ? ", " : "");
        strcat(s, t->cols[idx ? idx[i] : i].name);
    }
    return s;
}

static int table_def(const struct pj_stmt *st, struct table *t, es_err_t *err)
{
    struct lex l = {.p = st->sql, .st = st};
    t->name = st->table;
    next(&l);
    if (expect_kw(&l, "CREATE", err) || expect_kw(&l, "TABLE", err))
        return -1;
    while (l.t == T_ID && !is_punct(&l, '('))
        next(&l); /* IF NOT EXISTS `name` */
    if (expect_punct(&l, '(', err))
        return -1;
    while (l.t == T_ID) {
        int rc = 0;
        if (is_kw(&l, "PRIMARY"))
            rc = key_def(&l, t, err);
        else if (is_kw(&l, "KEY") || is_kw(&l, "UNIQUE") || is_kw(&l, "INDEX") ||
                 is_kw(&l, "FULLTEXT") || is_kw(&l, "SPATIAL") || is_kw(&l, "CONSTRAINT"))
            skip_item(&l);
        else
            rc = column_def(&l, t, err);
        if (rc)
            return -1;
        if (!is_punct(&l, ','))
            break;
        next(&l);
    }
    if (expect_punct(&l, ')', err) || t->nkey == 0)
        return t->nkey ? -1 : es_set(err, ES_EINVAL, "table %s: no primary key", t->name);
    t->columns = join_names(t, NULL, t->n);
    t->key_list = join_names(t, t->key, t->nkey);
    return 0;
}

pj_schema_t *pj_schema_new(const pj_projection_t *p, es_err_t *err)
{
    pj_schema_t *s = xcalloc(1, sizeof *s);
    pj_plan_t *ddl = pj_plan_new();
    p->ddl("", ddl);
    s->t = xcalloc(pj_plan_len(ddl) + 1, sizeof *s->t);
    for (size_t i = 0; i < pj_plan_len(ddl); i++) {
        if (table_def(pj_plan_stmt(ddl, i), &s->t[s->n++], err)) {
            pj_schema_free(s);
            s = NULL;
            break;
        }
    }
    pj_plan_free(ddl);
    return s;
}

void pj_schema_free(pj_schema_t *s)
{
    if (!s)
        return;
    for (size_t i = 0; i < s->n; i++) {
        for (size_t k = 0; k < s->t[i].n; k++) {
            free(s->t[i].cols[k].name);
            json_decref(s->t[i].cols[k].def);
        }
        free(s->t[i].cols);
        free(s->t[i].columns);
        free(s->t[i].key_list);
    }
    free(s->t);
    free(s);
}

const char *pj_schema_columns(const pj_schema_t *s, const char *table)
{
    const struct table *t = table_find(s, table);
    return t ? t->columns : NULL;
}

const char *pj_schema_key(const pj_schema_t *s, const char *table)
{
    const struct table *t = table_find(s, table);
    return t ? t->key_list : NULL;
}
