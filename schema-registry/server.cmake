# The schema registry server role: compatibility rules, the in-memory store over the _schemas
# log, and the REST server on es_http.
add_library(es_registry STATIC sr_compat.c sr_store.c sr_log.c sr_server.c)
target_include_directories(es_registry PUBLIC ${CMAKE_CURRENT_SOURCE_DIR})
target_link_libraries(es_registry PUBLIC es_runtime PkgConfig::AVRO PkgConfig::JANSSON)

add_executable(eventshop-registry registry_main.c)
target_link_libraries(eventshop-registry PRIVATE es_registry)
