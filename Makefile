# eventshop — the two commands: `make up` and `make test`. See README.md.
# up: infrastructure (only what is missing), roles, a supervisor that restarts dead roles;
# status: per process state, ready, restarts, lag; down: returns once every process has exited.
.PHONY: all setup build up down status test bench chaos token format clean

BUILD ?= build
JOBS ?= 2
# cmake's output (configure and build) goes here; a failed build prints its name and last lines
BUILD_LOG ?= .state/build.log

all: build

setup:
	@scripts/setup.sh

# one line: "build: ok (N s)" (and the number of compiler warnings, if any), or on failure the
# log's name and its last 30 lines (less make's directory lines), with a non-zero exit
build: setup
	@mkdir -p $(dir $(BUILD_LOG)); t0=$$(date +%s); \
	if { cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo && \
	     cmake --build $(BUILD) -j$(JOBS); } >$(BUILD_LOG) 2>&1; then \
	    w=$$(grep -c 'warning:' $(BUILD_LOG) || true); \
	    echo "build: ok ($$(($$(date +%s) - t0)) s$$([ "$$w" = 0 ] || echo ", $$w compiler warnings: see $(BUILD_LOG)"))"; \
	else \
	    echo "build failed, see $(BUILD_LOG); its last 30 lines:" >&2; \
	    grep -vE '^g?make\[[0-9]+\]: (Entering|Leaving) directory' $(BUILD_LOG) | tail -n 30 >&2; exit 1; \
	fi

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
	@[ -f $${ES_STATE:-.state/dev}/env ] || { echo "no local stack: run make up first" >&2; exit 1; }
	@. $${ES_STATE:-.state/dev}/env && $(BUILD)/api/eventshop-token --role $(ROLE) --sub $(SUB) $(if $(VENDOR),--vendor $(VENDOR))

format:
	@git ls-files '*.c' '*.h' | xargs clang-format -i

clean:
	rm -rf build build-asan
