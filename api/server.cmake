# The eventshop-api role: the library (route table, handler families, commands, results) and its
# small main. Included by api/CMakeLists.txt, which defines the JWT library first.
add_library(es_api_server STATIC
  api_validate.c api_outcome.c api_reply.c api_routes.c api_auth.c api_commands.c api_admin.c api_admin_live.c
  api_products.c api_inventory.c api_pricing.c api_query.c api_positions.c api_health.c api_producer.c api_results.c api_server.c api_web.c api_cache.c)
target_include_directories(es_api_server PUBLIC ${CMAKE_CURRENT_SOURCE_DIR})
# the pages' folder when EVENTSHOP_WEB_DIR is not set: the source tree's (api_web.h)
target_compile_definitions(es_api_server PRIVATE ES_WEB_DIR="${CMAKE_SOURCE_DIR}/web")
target_link_libraries(es_api_server PUBLIC es_projections es_domain es_events es_sr_client es_runtime PkgConfig::JANSSON
  Threads::Threads)
if(TARGET es_api_jwt)
  target_link_libraries(es_api_server PUBLIC es_api_jwt)
endif()

# The contract, api/openapi.yaml, compiled in as a C string for GET /openapi.yaml (api_openapi.c).
add_custom_command(
  OUTPUT ${CMAKE_CURRENT_BINARY_DIR}/openapi_yaml.c
  COMMAND ${CMAKE_COMMAND} -DIN=${CMAKE_CURRENT_SOURCE_DIR}/openapi.yaml
          -DOUT=${CMAKE_CURRENT_BINARY_DIR}/openapi_yaml.c -DNAME=api_openapi_yaml
          -P ${CMAKE_CURRENT_SOURCE_DIR}/embed.cmake
  DEPENDS ${CMAKE_CURRENT_SOURCE_DIR}/openapi.yaml ${CMAKE_CURRENT_SOURCE_DIR}/embed.cmake
  COMMENT "Embedding api/openapi.yaml")
target_sources(es_api_server PRIVATE api_openapi.c ${CMAKE_CURRENT_BINARY_DIR}/openapi_yaml.c)

add_executable(eventshop-api api_main.c)
target_link_libraries(eventshop-api PRIVATE es_api_server)
