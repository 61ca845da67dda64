# ngx_exchange_health_module
#
#   make          build the dynamic module against Debian's nginx
#   make test     build, run the C unit tests, then the whole t/ suite
#   make demo     nginx with the module in front of a simulated Exchange farm
#   make static NGINX_SOURCE=<nginx source tree>
#                 nginx with the module built in (--add-module), then the
#                 main tests against it: checks other nginx releases
#   make sanitize [NGINX_SOURCE=<nginx source tree>]
#                 the same with AddressSanitizer and UBSan, then all of t/;
#                 without NGINX_SOURCE, Debian's nginx source is fetched
#   make fuzz     libFuzzer targets of the body scanner, the request
#                 parsers, the state file reader, the signed-in
#                 probe's answer readers and its NTLM CHALLENGE reader,
#                 FUZZ_SECONDS (60) each; needs
#                 clang (and nginx's source, as make sanitize), not make
#                 test
#   make fuzz-responses  mutated upstream answers through nginx with the
#                 module (the sanitizer build when there is one)
#   make fuzz-captures  mutated captures through the replay tool's readers
#   make fuzz-smoke  all of them for 10 s each, for CI
#   make bench    benchmarks: the module against plain nginx in one run
#                 (wrk), the matcher alone, reaction times, then a day of
#                 real traffic beside plain nginx and HAProxy
#                 (bench/real-traffic), then streams and requests
#                 meant to wait at length (bench/streaming); not part
#                 of make test;
#                 BENCH_ARGS=--quick for a short run, REAL_TRAFFIC_ARGS,
#                 STREAMING_ARGS=--tries=N
#   make load     minutes of load with a flapping server and workers
#                 killed (bench/load-flapping); LOAD_ARGS=--seconds=30
#   make deb      the Debian package, as Debian builds its nginx modules
#                 (dh-sequence-nginx), into build/deb/, then lintian:
#                 a lintian error fails it
#   make clean    remove build output

SHELL      := /bin/bash
NGINX_SRC ?= /usr/share/nginx/src
NGINX     ?= /usr/sbin/nginx
BUILD     ?= build
MODULE     = $(BUILD)/ngx_http_exchange_health_module.so
CC        ?= cc
PROVE     ?= prove

NGX_TREE   = $(BUILD)/nginx
MODULE_CFLAGS = -g -O2 -fPIC -Wextra -Wno-unused-parameter

SRCS := config $(wildcard ngx_exchange_health_module/*.[ch])

UNIT_CFLAGS = -g -O1 -Wall -Wextra -Werror -Ingx_exchange_health_module
UNIT_SRCS  := $(wildcard t/unit/*.c)
UNIT_BINS  := $(UNIT_SRCS:t/unit/%.c=$(BUILD)/unit/%)
PURE_SRCS   = ngx_exchange_health_module/ngx_http_exchange_health_scan.c \
              ngx_exchange_health_module/ngx_http_exchange_health_siphash.c \
              ngx_exchange_health_module/ngx_http_exchange_health_request.c \
              ngx_exchange_health_module/ngx_http_exchange_health_operation.c \
              ngx_exchange_health_module/ngx_http_exchange_health_statefile.c \
              ngx_exchange_health_module/ngx_http_exchange_health_service.c \
              ngx_exchange_health_module/ngx_http_exchange_health_md4.c \
              ngx_exchange_health_module/ngx_http_exchange_health_ntlm.c

# The fuzzers link the plain C files alone, as the unit tests do (but
# signin_answer, below, which needs nginx's string functions).  A
# crash leaves its input in build/fuzz/crashes/; rerun it with
# build/fuzz/<name> <file>.
FUZZ_CC      ?= clang
FUZZ_SECONDS ?= 60
FUZZ_CFLAGS   = -g -O1 -fno-omit-frame-pointer \
                -fsanitize=fuzzer,address,undefined \
                -fno-sanitize-recover=undefined \
                -Wall -Wextra -Werror -Ingx_exchange_health_module
FUZZ_NAMES    = scan request statefile service signin_answer ntlm
FUZZ_BINS    := $(FUZZ_NAMES:%=$(BUILD)/fuzz/%)
FUZZ_SEEDS    = $(BUILD)/fuzz/seeds

STATIC_TESTS = t/10-detect.t t/12-policy.t t/13-reload.t t/20-retry.t \
               t/40-status.t

# The matcher's benchmark links the scanner alone, built as the module is
BENCH_CFLAGS = -g -O2 -Wall -Wextra -Werror -Ingx_exchange_health_module
BENCH_ENV    = EH_MODULE=$(CURDIR)/$(MODULE) EH_NGINX=$(NGINX)

SANITIZE_CFLAGS = -g -O1 -fno-omit-frame-pointer -fsanitize=address,undefined
SANITIZE_ENV = ASAN_OPTIONS=detect_leaks=0:abort_on_error=1:disable_coredump=1 \
               UBSAN_OPTIONS=print_stacktrace=1:suppressions=$(CURDIR)/tools/ubsan.supp

.PHONY: all deps test unit prove demo static sanitize fuzz fuzz-responses \
        fuzz-captures fuzz-smoke bench load deb clean

all: $(MODULE)

deps:
	@tools/install-deps build

# A private copy of Debian's nginx build tree, configured with the flags of
# the packaged binary so the module's signature matches /usr/sbin/nginx.
$(NGX_TREE)/objs/Makefile: config | deps
	rm -rf $(NGX_TREE)
	mkdir -p $(BUILD)
	cp -r $(NGINX_SRC) $(NGX_TREE)
	cd $(NGX_TREE) && . ./conf_flags && ./configure "$${NGX_CONF_FLAGS[@]}" \
	    --with-cc-opt="$(MODULE_CFLAGS)" \
	    --add-dynamic-module=$(CURDIR) > configure.log 2>&1 \
	    || { tail -20 configure.log; exit 1; }

$(MODULE): $(NGX_TREE)/objs/Makefile $(SRCS)
	$(MAKE) -C $(NGX_TREE) -f objs/Makefile modules
	@# a new file, not an overwrite: running nginx workers map the old one
	cp $(NGX_TREE)/objs/ngx_http_exchange_health_module.so $@.tmp
	mv -f $@.tmp $@

$(BUILD)/unit/%: t/unit/%.c t/unit/unit.h t/unit/encode.h $(PURE_SRCS) ngx_exchange_health_module/*.h
	@mkdir -p $(BUILD)/unit
	$(CC) $(UNIT_CFLAGS) -o $@ $< $(PURE_SRCS) -lz -lcrypto

unit: $(UNIT_BINS)
	@for t in $(UNIT_BINS); do echo "unit: $$t"; $$t || exit 1; done

prove: $(MODULE)
	@tools/install-deps test
	EH_MODULE=$(CURDIR)/$(MODULE) EH_NGINX=$(NGINX) $(PROVE) -It/lib -r t/

test: $(MODULE) unit prove

demo: $(MODULE)
	@tools/install-deps demo
	EH_MODULE=$(CURDIR)/$(MODULE) EH_NGINX=$(NGINX) perl tools/demo

static:
	@test -x "$(NGINX_SOURCE)/configure" \
	    || { echo "usage: make static NGINX_SOURCE=<nginx source tree>"; exit 2; }
	@tools/install-deps build test
	tools/build-static $(NGINX_SOURCE) $(BUILD)/static
	EH_MODULE=static EH_NGINX=$(CURDIR)/$(BUILD)/static/objs/nginx \
	    $(PROVE) -It/lib $(STATIC_TESTS)

# nginx does not free all it allocates before it exits: leaks are not
# looked for here (the load script watches memory instead)
sanitize:
	@tools/install-deps build test
	$(eval NGINX_SOURCE := $(or $(NGINX_SOURCE),$(shell tools/nginx-source)))
	@test -x "$(NGINX_SOURCE)/configure" \
	    || { echo "sanitize: no nginx source tree"; exit 2; }
	tools/build-static $(NGINX_SOURCE) $(BUILD)/sanitize \
	    "$(SANITIZE_CFLAGS)" "-fsanitize=address,undefined"
	$(SANITIZE_ENV) EH_MODULE=static EH_NGINX=$(CURDIR)/$(BUILD)/sanitize/objs/nginx \
	    $(PROVE) -It/lib -r t/

$(BUILD)/fuzz/%: fuzz/%.c t/unit/encode.h $(PURE_SRCS) ngx_exchange_health_module/*.h
	@tools/install-deps fuzz
	@mkdir -p $(BUILD)/fuzz
	$(FUZZ_CC) $(FUZZ_CFLAGS) -o $@ $< $(PURE_SRCS) -lz

# The signed-in probe's header reader is nginx code (ngx_buf_t, ngx_str_t):
# its target links nginx's own string functions, from a configured copy
# of nginx's source (NGINX_SOURCE, or Debian's, fetched as for sanitize).
FUZZ_NGX      = $(BUILD)/fuzz/nginx
FUZZ_NGX_INCS = $(patsubst %,-I$(FUZZ_NGX)/%,src/core src/event \
                  src/event/modules src/os/unix objs src/http src/http/modules)

$(FUZZ_NGX)/objs/ngx_auto_config.h:
	@tools/install-deps build
	$(eval NGINX_SOURCE := $(or $(NGINX_SOURCE),$(shell tools/nginx-source)))
	@test -x "$(NGINX_SOURCE)/configure" \
	    || { echo "fuzz: no nginx source tree"; exit 2; }
	rm -rf $(FUZZ_NGX)
	mkdir -p $(BUILD)/fuzz
	cp -r $(NGINX_SOURCE) $(FUZZ_NGX)
	cd $(FUZZ_NGX) && ./configure --with-http_ssl_module > configure.log 2>&1

$(BUILD)/fuzz/signin_answer: fuzz/signin_answer.c \
        ngx_exchange_health_module/ngx_http_exchange_health_signin_answer.c \
        $(PURE_SRCS) ngx_exchange_health_module/*.h \
        $(FUZZ_NGX)/objs/ngx_auto_config.h
	@tools/install-deps fuzz
	$(FUZZ_CC) $(FUZZ_CFLAGS) -Wno-unused-parameter $(FUZZ_NGX_INCS) -o $@ \
	    $< ngx_exchange_health_module/ngx_http_exchange_health_signin_answer.c \
	    $(PURE_SRCS) $(FUZZ_NGX)/src/core/ngx_string.c -lz

# Seeds are made afresh from the captures; what the fuzzers find on top
# of them stays in build/fuzz/corpus/ from run to run.
$(FUZZ_SEEDS)/.made: fuzz/seeds $(wildcard t/captures/*.http t/*.t)
	@tools/install-deps fuzz
	rm -rf $(FUZZ_SEEDS)
	fuzz/seeds $(FUZZ_SEEDS)
	@touch $@

fuzz: $(FUZZ_BINS) $(FUZZ_SEEDS)/.made
	fuzz/run $(BUILD) $(FUZZ_SECONDS) $(FUZZ_NAMES)

# upstream answers mutated at random through nginx with the module; with
# the sanitizer build of "make sanitize" when there is one
FUZZ_NGINX = $(if $(wildcard $(BUILD)/sanitize/objs/nginx),\
                --nginx $(BUILD)/sanitize/objs/nginx --module static,\
                --module $(CURDIR)/$(MODULE))

fuzz-responses: $(MODULE)
	@tools/install-deps test
	$(if $(wildcard $(BUILD)/sanitize/objs/nginx),$(SANITIZE_ENV)) \
	    perl fuzz/responses --seconds $(FUZZ_SECONDS) $(FUZZ_NGINX)

# what operators give the replay tool: raw, curl -i and HAR files, mutated
fuzz-captures:
	@tools/install-deps test
	perl fuzz/captures --seconds $(FUZZ_SECONDS)

fuzz-smoke:
	$(MAKE) fuzz fuzz-responses fuzz-captures FUZZ_SECONDS=10

$(BUILD)/bench/scan-speed: bench/scan-speed.c t/unit/encode.h \
        ngx_exchange_health_module/ngx_http_exchange_health_scan.[ch]
	@mkdir -p $(BUILD)/bench
	$(CC) $(BENCH_CFLAGS) -o $@ $< \
	    ngx_exchange_health_module/ngx_http_exchange_health_scan.c -lz

# measurements, not tests: see docs/performance.md and docs/hardening.md
bench: $(MODULE) $(BUILD)/bench/scan-speed
	@tools/install-deps bench
	$(BENCH_ENV) perl bench/run $(BENCH_ARGS)
	$(BENCH_ENV) perl bench/real-traffic $(REAL_TRAFFIC_ARGS)
	$(BENCH_ENV) perl bench/streaming $(STREAMING_ARGS)

load: $(MODULE)
	@tools/install-deps bench
	$(BENCH_ENV) perl bench/load-flapping $(LOAD_ARGS)

# Built from a copy of the sources in build/deb/src, so that debhelper's
# files stay out of the tree; the packages land in build/deb/.
deb:
	@tools/install-deps deb
	rm -rf $(BUILD)/deb
	mkdir -p $(BUILD)/deb/src
	git ls-files -z | xargs -0 cp --parents -t $(BUILD)/deb/src
	cd $(BUILD)/deb/src && dpkg-buildpackage -b -us -uc
	@# errors fail the build; warnings and notes are shown, not fatal
	lintian --info --display-info --fail-on error $(BUILD)/deb/*.changes

clean:
	rm -rf $(BUILD)
