"""check_layers.py on small made-up trees: what it must refuse and what it must let through.

    .cache/venv/bin/python -m pytest -q -p no:cacheprovider tests/layers
"""
import os
import sys

sys.path.insert(0, os.path.dirname(__file__))
import check_layers  # noqa: E402


def tree(tmp_path, files):
    for rel, text in files.items():
        p = tmp_path / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
    for folder in ("runtime", "events", "domain"):
        (tmp_path / folder).mkdir(exist_ok=True)
    return str(tmp_path)


def violations(tmp_path, files):
    bad, _ = check_layers.check(tree(tmp_path, files))
    return [(rel, line, what.split(" (")[0]) for rel, line, what in bad]


def test_a_clean_tree_passes(tmp_path):
    assert violations(tmp_path, {
        "runtime/es_err.h": "",
        "events/ev_codec.h": '#include "es_err.h"\n',
        "domain/dm_json.h": '#include "ev_codec.h"\n',
        "api/api_x.c": '#include "api_x.h"\n#include "dm_json.h"\n#include <jansson.h>\n',
        "api/api_x.h": "",
        "subscribers/notes.c": '#include "dm_json.h"\n#include "es_err.h"\n#include "gone.h"\n',
    }) == []


def test_a_role_including_another_role_fails(tmp_path):
    assert violations(tmp_path, {
        "api/users_crypto.h": "",
        "subscribers/notifications.c": '#include "es_err.h"\n  #  include "users_crypto.h"\n',
    }) == [("subscribers/notifications.c", 2, 'includes "users_crypto.h" of api/')]


def test_an_upward_include_fails(tmp_path):
    assert violations(tmp_path, {
        "command-handlers/pricing_rules.h": "",
        "domain/dm_json.c": '#include "pricing_rules.h"\n',
        "runtime/es_kafka.c": '#include "../events/ev_codec.h"\n',
        "events/ev_codec.h": "",
    }) == [("domain/dm_json.c", 1, 'includes "pricing_rules.h" of command-handlers/'),
           ("runtime/es_kafka.c", 1, 'includes "../events/ev_codec.h" of events/')]


def test_the_own_folder_wins_over_a_peer_of_the_same_name(tmp_path):
    files = {"subscribers/payments.h": "", "subscribers/payments.c": '#include "payments.h"\n',
             "projections/payments.h": "", "command-handlers/payments.h": ""}
    assert violations(tmp_path, files) == []
    files["api/api_pay.c"] = '#include "payments.h"\n'
    assert violations(tmp_path, files) == [
        ("api/api_pay.c", 1, 'includes "payments.h" of command-handlers/ or projections/ or '
                             'subscribers/')]


def test_cmake_paths_and_links_into_a_peer_fail(tmp_path):
    assert violations(tmp_path, {
        "api/CMakeLists.txt": "add_library(es_users_crypto STATIC users_crypto.c)\n",
        "command-handlers/CMakeLists.txt": (
            "# ${CMAKE_SOURCE_DIR}/api in a comment is not a path\n"
            "target_include_directories(es_handlers PUBLIC ${CMAKE_SOURCE_DIR}/events\n"
            "  ${CMAKE_SOURCE_DIR}/projections)\n"),
        "subscribers/CMakeLists.txt": (
            "add_library(es_sb STATIC a.c)\n"
            "target_link_libraries(es_sb PUBLIC es_sb es_users_crypto\n  es_domain)\n"),
        "domain/CMakeLists.txt": "add_library(es_domain STATIC dm_json.c)\n"
                                 "target_include_directories(es_domain PUBLIC\n"
                                 "  ${CMAKE_CURRENT_SOURCE_DIR}/../subscribers)\n",
    }) == [("command-handlers/CMakeLists.txt", 3, "reaches into projections/"),
           ("domain/CMakeLists.txt", 3, "reaches into subscribers/"),
           ("subscribers/CMakeLists.txt", 2, "links es_users_crypto of api/")]


def test_the_command_line(tmp_path, capsys):
    root = tree(tmp_path, {"subscribers/a.c": '#include "b.h"\n', "projections/b.h": ""})
    assert check_layers.main(["check_layers.py", root]) == 1
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith('subscribers/a.c:1: includes "b.h" of projections/ (subscribers/ may '
                             'use itself and domain/, events/')
    assert out[-1] == "layers: 1 violation in 2 files"
    os.remove(os.path.join(root, "subscribers", "a.c"))
    assert check_layers.main(["check_layers.py", root]) == 0
    assert check_layers.main(["check_layers.py", str(tmp_path / "nowhere")]) == 2


def test_the_api_may_use_the_projections_plans_but_not_the_other_way(tmp_path):
    assert violations(tmp_path, {
        "api/api_cache.c": '#include "pj_row.h"\n', "projections/pj_row.h": "",
        "projections/pj_x.c": '#include "api_app.h"\n', "api/api_app.h": "",
    }) == [("projections/pj_x.c", 1, 'includes "api_app.h" of api/')]
