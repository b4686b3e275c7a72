# eventshop — the two commands: `make up` and `make test`. See README.md.
# up: infrastructure (only what is missing), roles, a supervisor that restarts dead roles;
# status: per process state, ready, restarts, lag; down: returns once every process has exited.
.PHONY: all setup build up down status test bench chaos token format clean

BUILD ?= build
JOBS ?= 2

all: build

setup:
	@scripts/setup.sh

build: setup
	@cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
	@cmake --build $(BUILD) -j$(JOBS) 2>&1 | grep -vE '^\[|^-- |Consolidate compiler' || true
	@cmake --build $(BUILD) -j$(JOBS) >/dev/null

up: build
	@scripts/stack.sh up

down:
	@scripts/stack.sh down

status:
	@scripts/stack.sh status

test:
	@scripts/test.sh

bench: build
	@scripts/bench.sh

# faults of every dependency and role under a steady load, on a stack of its own (≤ 25 min)
chaos: build
	@scripts/chaos.sh

# prints only the token, minted with the key `make up` generated
token:
	@[ -n "$(ROLE)" ] && [ -n "$(SUB)" ] || { echo "usage: make token ROLE=<admin|vendor|customer> SUB=<id> [VENDOR=<vendor id>]" >&2; exit 2; }
	@[ -f .state/dev/env ] || { echo "no local stack: run make up first" >&2; exit 1; }
	@. .state/dev/env && $(BUILD)/api/eventshop-token --role $(ROLE) --sub $(SUB) $(if $(VENDOR),--vendor $(VENDOR))

format:
	@git ls-files '*.c' '*.h' | xargs clang-format -i

clean:
	rm -rf build build-asan
