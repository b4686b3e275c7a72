# The users context's API side (included by api/CMakeLists.txt after server.cmake): the key store
# and the failed-login limiter as a small library, the eventshop-users operator tool
# (bootstrap-admin), and the users handlers in the API server. The crypto (blind index, sealing,
# Argon2id) is domain/'s users_crypto, which the notifications subscriber shares.
add_library(es_api_users STATIC users_keys.c api_ratelimit.c)
target_include_directories(es_api_users PUBLIC ${CMAKE_CURRENT_SOURCE_DIR})
target_link_libraries(es_api_users PUBLIC es_domain es_runtime Threads::Threads m)

if(TARGET es_api_server AND EXISTS ${CMAKE_CURRENT_SOURCE_DIR}/api_users.c)
  # orders seal with users keys; the history opens what they sealed
  target_sources(es_api_server PRIVATE api_users.c api_orders.c api_history.c api_access.c
    api_stream.c api_stream_hub.c api_stream_run.c)
  target_link_libraries(es_api_server PUBLIC es_api_users)
endif()

if(TARGET es_api_server AND EXISTS ${CMAKE_CURRENT_SOURCE_DIR}/users_main.c)
  add_executable(eventshop-users users_main.c)
  target_link_libraries(eventshop-users PRIVATE es_api_server es_api_users)
endif()
