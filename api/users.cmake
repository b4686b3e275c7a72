# The users context's API side (included by api/CMakeLists.txt after server.cmake): the crypto
# (blind index, sealing, Argon2id) and the failed-login limiter as a small library, the
# eventshop-users operator tool (bootstrap-admin), and the users handlers in the API server.
pkg_check_modules(SODIUM REQUIRED IMPORTED_TARGET GLOBAL libsodium)
pkg_check_modules(ARGON2 REQUIRED IMPORTED_TARGET GLOBAL libargon2)

add_library(es_users_crypto STATIC users_crypto.c users_keys.c api_ratelimit.c)
target_include_directories(es_users_crypto PUBLIC ${CMAKE_CURRENT_SOURCE_DIR})
target_link_libraries(es_users_crypto PUBLIC es_runtime PkgConfig::SODIUM PkgConfig::ARGON2
  Threads::Threads m)

if(TARGET es_api_server AND EXISTS ${CMAKE_CURRENT_SOURCE_DIR}/api_users.c)
  target_sources(es_api_server PRIVATE api_users.c api_orders.c) # orders seal with users keys
  target_link_libraries(es_api_server PUBLIC es_users_crypto)
endif()

if(TARGET es_api_server AND EXISTS ${CMAKE_CURRENT_SOURCE_DIR}/users_main.c)
  add_executable(eventshop-users users_main.c)
  target_link_libraries(eventshop-users PRIVATE es_api_server es_users_crypto)
endif()
