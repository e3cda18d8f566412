# sluice - hand-written GNU Makefile (Redis style).
#
#   make deps        install what make and make run need, if missing
#   make deps-test   ... and what the tests need (and the npm test client)
#   make deps-bench  ... and what the benchmarks need
#   make             build build/sluice, build/sluice-mock, build/sluice-tune
#   make run         start sluice on 127.0.0.1:8080 with sluice-mock behind it
#   make test        check-style, unit tests (cmocka), integration tests (node --test,
#                    curl), a short fuzz pass
#   make asan        the integration suite under ASan + UBSan
#   make fuzz        run every libFuzzer harness for FUZZ_SECONDS each
#   make bench       wrk benchmarks against nginx; writes bench/RESULTS.md
#   make format      clang-format the sources
#   make check-style the house rules a compiler does not check (include circles
#                    fail it too; CHECK_CYCLES=0 only prints them)
#
# Each target that needs more than the build installs its tier of
# scripts/deps.sh first (as root; otherwise it prints the apt-get line).

BUILD ?= build
CC ?= cc
PKGS := libmicrohttpd libcurl jansson hiredis openssl libconfig
OPT ?= -O2
WARN := -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes -Wformat=2 \
        -Wno-unused-parameter -Werror
CFLAGS_ALL := -std=gnu11 $(OPT) -g -pthread $(WARN) -D_GNU_SOURCE \
              $(shell pkg-config --cflags $(PKGS) 2>/dev/null) $(CFLAGS) $(EXTRA_CFLAGS)
LDLIBS_ALL := $(shell pkg-config --libs $(PKGS) 2>/dev/null) -lm -pthread $(LDLIBS)
LDFLAGS_ALL := $(LDFLAGS) $(EXTRA_LDFLAGS)

# Everything but the mains goes in one static library that the binaries, the
# unit tests and the fuzz harnesses link. sluice-mock lives in src/mock/ and
# sluice-tune in src/tune/; they include the library's headers from src/
# (-iquote for the mock: <limits.h> stays the system's). Each program's files
# are listed by name: a file joins a program only by being listed, and a .c
# under src/ that no list names stops the build (below).
LIB_SRCS := src/admin.c src/answer.c src/api_common.c src/api_messages.c src/api_responses.c \
            src/attempt.c src/dialect.c src/breaker.c src/cache.c src/cache_mem.c src/cache_redis.c \
            src/cascade.c src/conf_check.c src/config.c src/cost.c src/deadline.c src/exchange.c src/http.c \
            src/jscan.c src/learned.c src/limits.c src/log.c src/loop.c src/metrics.c \
            src/mhd_errors.c src/observe.c src/otel.c src/otel_export.c src/otlp.c src/phase.c \
            src/provider.c \
            src/provider_anthropic.c src/provider_openai.c src/redis.c src/redis_conn.c \
            src/redis_topo.c src/redis_url.c src/request.c src/scorer.c src/server.c src/sink.c \
            src/sse.c src/stats.c src/trace.c src/ui.c src/upstream.c src/util.c
MOCK_SRCS := src/mock/mock.c src/mock/mock_anthropic.c src/mock/mock_conn.c src/mock/mock_ctl.c \
             src/mock/mock_ep.c src/mock/mock_gen.c src/mock/mock_http.c src/mock/mock_reply.c \
             src/mock/mock_replay.c
TUNE_SRCS := src/tune/tune.c src/tune/tune_chain.c src/tune/tune_common.c src/tune/tune_data.c \
             src/tune/tune_eval.c src/tune/tune_fit.c src/tune/tune_learn.c \
             src/tune/tune_search.c src/tune/tune_simulate.c src/tune/tune_svg.c \
             src/tune/tune_select.c src/tune/tune_train.c src/tune/learned_train.c
UNLISTED_SRCS := $(filter-out src/main.c $(LIB_SRCS) $(MOCK_SRCS) $(TUNE_SRCS), \
                 $(wildcard src/*.c src/*/*.c))
ifneq ($(strip $(UNLISTED_SRCS)),)
$(error $(strip $(UNLISTED_SRCS)) in no program: list it in LIB_SRCS (src/), MOCK_SRCS (src/mock/) or TUNE_SRCS (src/tune/) in the Makefile)
endif
LIB_OBJS := $(LIB_SRCS:src/%.c=$(BUILD)/obj/%.o) $(BUILD)/obj/ui_assets.o
# The dashboard's assets, embedded by a generated C file (src/ui/embed.sh).
UI_ASSETS := src/ui/index.html src/ui/app.js src/ui/app.css src/ui/uPlot.iife.min.js \
             src/ui/uPlot.min.css
LIB := $(BUILD)/libsluice.a
BINS := $(BUILD)/sluice $(BUILD)/sluice-mock $(BUILD)/sluice-tune
UNIT_SRCS := $(wildcard tests/unit/test_*.c)
UNIT_BINS := $(UNIT_SRCS:tests/unit/%.c=$(BUILD)/tests/%)

.PHONY: all deps deps-test deps-bench run test unit integration asan fuzz fuzz-smoke bench format clean \
        check-style

all: $(BINS)

$(BUILD)/obj/%.o: src/%.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) -MMD -MP -c $< -o $@

$(BUILD)/gen/ui_assets.c: $(UI_ASSETS) src/ui/embed.sh
	@mkdir -p $(dir $@)
	src/ui/embed.sh $@ $(UI_ASSETS)

$(BUILD)/obj/ui_assets.o: $(BUILD)/gen/ui_assets.c src/ui.h
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) -iquote src -c $< -o $@

$(LIB): $(LIB_OBJS)
	@rm -f $@
	ar rcs $@ $^

# libmicrohttpd's calls to these reach mhd_errors.c (its error pages in
# OpenAI's shape): the executable exports its definitions.
MHD_INTERPOSE := -Wl,--export-dynamic-symbol=MHD_create_response_from_buffer \
                 -Wl,--export-dynamic-symbol=MHD_queue_response

$(BUILD)/sluice: $(BUILD)/obj/main.o $(LIB)
	$(CC) $(LDFLAGS_ALL) $(MHD_INTERPOSE) -o $@ $^ $(LDLIBS_ALL)

$(MOCK_SRCS:src/%.c=$(BUILD)/obj/%.o): CFLAGS_ALL += -iquote src

$(BUILD)/sluice-mock: $(MOCK_SRCS:src/%.c=$(BUILD)/obj/%.o) $(LIB)
	$(CC) $(LDFLAGS_ALL) -o $@ $^ $(LDLIBS_ALL)

$(TUNE_SRCS:src/%.c=$(BUILD)/obj/%.o): CFLAGS_ALL += -Isrc

$(BUILD)/sluice-tune: $(TUNE_SRCS:src/%.c=$(BUILD)/obj/%.o) $(LIB)
	$(CC) $(LDFLAGS_ALL) -o $@ $^ $(LDLIBS_ALL)

$(BUILD)/tests/%: tests/unit/%.c $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) -MMD -MP -Wno-missing-prototypes -iquote src -o $@ $< $(LIB) $(LDLIBS_ALL) -lcmocka

deps:
	@scripts/deps.sh run

deps-test:
	@scripts/deps.sh test

deps-bench:
	@scripts/deps.sh bench

run: deps
	$(MAKE) all
	scripts/run.sh

unit: $(UNIT_BINS)
	@set -e; for t in $(UNIT_BINS); do echo "== $$t"; $$t; done

# No test may hang the run: each has TEST_TIMEOUT_MS, then it fails.
TEST_TIMEOUT_MS ?= 900000
NODE_TEST := node --test --test-concurrency=1 --test-timeout=$(TEST_TIMEOUT_MS)

integration: all
	SLUICE_BUILD=$(abspath $(BUILD)) $(NODE_TEST) tests/integration/

test: deps-test
	$(MAKE) check-style
	$(MAKE) all
	$(MAKE) unit
	$(MAKE) integration
	$(MAKE) fuzz-smoke

# The integration suite against binaries built with ASan and UBSan.
asan: deps-test
	$(MAKE) BUILD=build/asan OPT="-O1 -fno-omit-frame-pointer" \
	    EXTRA_CFLAGS="-fsanitize=address,undefined -fno-sanitize-recover=undefined" \
	    EXTRA_LDFLAGS="-fsanitize=address,undefined" all
	ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	    LSAN_OPTIONS=suppressions=$(abspath tests/lsan.supp):print_suppressions=0 \
	    SLUICE_BUILD=$(abspath build/asan) SLUICE_SLOW=4 \
	    $(NODE_TEST) tests/integration/

FUZZ_SECONDS ?= 60
FUZZ_SRCS := $(wildcard tests/fuzz/fuzz_*.c)
FUZZ_BINS := $(FUZZ_SRCS:tests/fuzz/%.c=build/fuzz/%)

# The gateway library is compiled once for every harness (coverage and
# sanitizers, no libFuzzer main), then each harness links against it.
FUZZ_CFLAGS := -std=gnu11 -g -O1 -D_GNU_SOURCE -DSLUICE_FUZZ -fsanitize=fuzzer-no-link,address,undefined \
               $(shell pkg-config --cflags $(PKGS) 2>/dev/null) -iquote src
FUZZ_LIB_OBJS := $(LIB_SRCS:src/%.c=build/fuzz/obj/%.o) build/fuzz/obj/ui_assets.o
FUZZ_LIB := build/fuzz/libsluice-fuzz.a

build/fuzz/obj/%.o: src/%.c
	@mkdir -p $(dir $@)
	clang $(FUZZ_CFLAGS) -MMD -MP -c -o $@ $<

build/fuzz/obj/ui_assets.o: $(BUILD)/gen/ui_assets.c
	@mkdir -p $(dir $@)
	clang $(FUZZ_CFLAGS) -c -o $@ $<

$(FUZZ_LIB): $(FUZZ_LIB_OBJS)
	rm -f $@
	ar rcs $@ $^

build/fuzz/%: tests/fuzz/%.c $(FUZZ_LIB)
	@mkdir -p build/fuzz
	clang $(FUZZ_CFLAGS) -fsanitize=fuzzer -MMD -MP -o $@ $< $(FUZZ_LIB) $(LDLIBS_ALL)

-include $(FUZZ_LIB_OBJS:.o=.d) $(FUZZ_BINS:=.d)

# The mock's harnesses include its sources, which are not in LIB_SRCS.
$(filter build/fuzz/fuzz_mock_%,$(FUZZ_BINS)): $(MOCK_SRCS) $(wildcard src/mock/*.h)

fuzz: deps-test
	$(MAKE) $(FUZZ_BINS)
	@scripts/fuzz.sh $(FUZZ_SECONDS) $(FUZZ_BINS)

fuzz-smoke: $(FUZZ_BINS)
	@scripts/fuzz.sh 10 $(FUZZ_BINS)

$(BUILD)/bench-scorer: bench/scorer.c $(LIB)
	$(CC) $(CFLAGS_ALL) -o $@ $< $(LIB) $(LDLIBS_ALL)

$(BUILD)/bench-metrics: bench/metrics.c $(LIB)
	$(CC) $(CFLAGS_ALL) -o $@ $< $(LIB) $(LDLIBS_ALL)

$(BUILD)/bench-json: bench/json.c $(LIB)
	$(CC) $(CFLAGS_ALL) -o $@ $< $(LIB) $(LDLIBS_ALL)

bench: deps-bench
	$(MAKE) all $(BUILD)/bench-scorer $(BUILD)/bench-metrics $(BUILD)/bench-json
	bench/run.sh

# Banned calls, include order, contract comments, a unit test per module,
# include circles, and every file in docs/ARCHITECTURE.md's layout table
# (scripts/check-style.sh), after the checker's own test
# (tests/style/). Circles fail the check (CHECK_CYCLES=0: printed only).
CHECK_CYCLES ?= 1
check-style:
	@tests/style/test.sh
	@CHECK_CYCLES=$(CHECK_CYCLES) scripts/check-style.sh

format:
	clang-format -i src/*.c src/*.h src/mock/*.c src/mock/*.h src/tune/*.c src/tune/*.h \
	    tests/unit/*.c tests/fuzz/*.c

clean:
	rm -rf build

-include $(LIB_OBJS:.o=.d) $(BUILD)/obj/main.d $(MOCK_SRCS:src/%.c=$(BUILD)/obj/%.d) \
         $(TUNE_SRCS:src/%.c=$(BUILD)/obj/%.d) \
         $(UNIT_BINS:=.d)
