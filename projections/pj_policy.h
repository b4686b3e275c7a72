/* pj_policy — what the projector role does once its arguments are parsed: serves metrics, then
 * either rebuilds one projection, or keeps its live tables projected, after bringing them to the
 * code's version first (the version policy below). Owns the process's signal handlers (SIGTERM,
 * SIGINT stop the run or the rebuild). */
#ifndef PJ_POLICY_H
#define PJ_POLICY_H

#include "pj_runtime.h"
#include <stdbool.h>

typedef struct pj_role_options {
    bool rebuild;  /* rebuild p (pj_rebuild) instead of projecting live */
    bool keep_old; /* with rebuild: keep the replaced tables */
} pj_role_options_t;

/* Runs the projector role for p (borrowed): with opt->rebuild, one pj_rebuild (batch from
 * EVENTSHOP_PROJECTOR_BATCH); else the live projector (pj_options_from_env), until a signal.
 *
 * Version policy: before projecting into the live tables (no table suffix), when
 * projection_versions records another version than p->version, it logs an error and rebuilds the
 * tables itself, readers keeping the old tables meanwhile; while another replica rebuilds
 * (ES_ECONFLICT), or with EVENTSHOP_PROJECTOR_AUTO_REBUILD=0, it waits for that rebuild instead,
 * checking every 5 s. Returns the process's exit status: 0, or 1 on a failure (logged). */
int pj_role_run(const pj_projection_t *p, const pj_role_options_t *opt);

#endif
