#include "es_log.h"
#include "es_trace.h"
#include <criterion/criterion.h>
#include <string.h>

Test(trace, validates_w3c_traceparent)
{
    cr_assert(es_trace_valid("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"));
    cr_assert_not(es_trace_valid(NULL));
    cr_assert_not(es_trace_valid("00-00000000000000000000000000000000-00f067aa0ba902b7-01"));
    cr_assert_not(es_trace_valid("00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01"));
    cr_assert_not(es_trace_valid("ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"));
    cr_assert_not(es_trace_valid("00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01"));
    cr_assert_not(es_trace_valid("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01x"));
}

Test(trace, child_keeps_trace_id_and_changes_span)
{
    const char *parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    char child[ES_TRACEPARENT_LEN], id[ES_TRACE_ID_LEN];
    es_trace_child(parent, child);
    cr_assert(es_trace_valid(child));
    cr_assert_eq(strncmp(child, parent, 36), 0);
    cr_assert_neq(strcmp(child + 36, parent + 36), 0);
    es_trace_id(child, id);
    cr_assert_str_eq(id, "4bf92f3577b34da6a3ce929d0e0e4736");
}

Test(trace, new_traces_are_valid_and_distinct)
{
    char a[ES_TRACEPARENT_LEN], b[ES_TRACEPARENT_LEN];
    es_trace_new(a);
    es_trace_child("garbage", b);
    cr_assert(es_trace_valid(a) && es_trace_valid(b));
    cr_assert_neq(strncmp(a, b, 35), 0);
}

Test(trace, a_trace_started_here_is_not_sampled_and_a_sampled_one_stays_sampled)
{
    const char *sampled = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    char own[ES_TRACEPARENT_LEN], child[ES_TRACEPARENT_LEN];
    es_trace_new(own);
    cr_assert_not(es_trace_sampled(own));
    cr_assert_eq(es_trace_log_level(own), ES_LOG_DEBUG);
    es_trace_child(sampled, child);
    cr_assert(es_trace_sampled(child));
    cr_assert_eq(es_trace_log_level(child), ES_LOG_INFO);
    cr_assert_not(es_trace_sampled("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-02"));
    cr_assert(es_trace_sampled("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-03"));
    cr_assert_not(es_trace_sampled(NULL));
}
