/* jemalloc's options, read at its start, for the roles CMake links with it (es_role_allocator).
 * background_thread: a thread of jemalloc's gives the pages freed after a burst back to the
 * system while the role is idle (without it jemalloc purges only when asked for memory again, so
 * an idle role would keep its peak); it sleeps while there is nothing to purge. */
const char *malloc_conf = "background_thread:true";
