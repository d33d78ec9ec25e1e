# tunneld: make (build), make run (try it), make check (every test), make install.
# make run and make check install what they need with apt-get on Debian.

SHELL = /bin/bash

PREFIX ?= /usr/local
BINDIR ?= $(PREFIX)/sbin
MANDIR ?= $(PREFIX)/share/man
# Local units belong in $(PREFIX)/lib/systemd/system, which systemd reads too;
# only an install into /usr goes where the distribution's units are.
ifeq ($(PREFIX),/usr)
SYSTEMDUNITDIR ?= $(shell pkg-config --variable=systemdsystemunitdir systemd 2>/dev/null || echo /lib/systemd/system)
else
SYSTEMDUNITDIR ?= $(PREFIX)/lib/systemd/system
endif
XINETDDIR ?= /etc/xinetd.d
DESTDIR ?=
VERSION = 0.1.0

CC ?= cc
CFLAGS ?= -O2 -g
# Development builds fail on any warning; RELEASE=1 keeps the warnings but not -Werror.
WARNINGS = -Wall -Wextra -Wpedantic -Wshadow -Wconversion -Wno-sign-conversion -Wformat=2 \
	-Wstrict-prototypes -Wmissing-prototypes -Wvla -Wcast-qual -Wundef -Wwrite-strings \
	-Wimplicit-fallthrough
ifneq ($(RELEASE),1)
WARNINGS += -Werror
endif
HARDENING = -D_FORTIFY_SOURCE=2 -fstack-protector-strong -fPIE
TUNNELD_CPPFLAGS = -std=c11 -D_GNU_SOURCE -DTUNNELD_VERSION='"$(VERSION)"'
LDHARDENING = -pie -Wl,-z,relro,-z,now -Wl,--as-needed

SOURCES = tunneld.c src/options.c src/offline.c src/client.c src/negotiate.c src/route.c src/outgoing.c src/jump.c src/ending.c \
	src/request.c src/socks5.c src/proxy_protocol.c src/policy.c src/auth.c src/response.c src/connector.c \
	src/signals.c src/relay.c src/log.c src/systemd.c src/lazy.c src/rules.c src/rules_judge.c src/rules_image.c src/rules_file.c \
	src/upstream.c src/sandbox.c src/acceptor.c src/config_file.c src/title.c
HEADERS = $(wildcard src/*.h)

BUILD_PACKAGES = gcc make libc6-dev pkg-config libsystemd-dev systemd
TEST_PACKAGES = $(BUILD_PACKAGES) dpkg-dev debhelper lintian bats curl socat netcat-openbsd openssl openssh-server openssh-client apache2-utils whois \
	stunnel4 xinetd haproxy python3 mandoc clang clang-tidy cppcheck valgrind libclang-rt-14-dev \
	iproute2 procps ncat python3-socks chromium calamaris fail2ban debootstrap systemd-container \
	squid tinyproxy microsocks dante-server rsync gdb

.PHONY: all run check test lint install install-xinetd uninstall clean deps-build deps-test deps-deb deb \
	fuzz fuzz-check sanitize-check valgrind-check bench mutants

all: tunneld

tunneld: $(SOURCES) $(HEADERS)
	$(CC) $(TUNNELD_CPPFLAGS) $(CPPFLAGS) $(WARNINGS) $(HARDENING) $(CFLAGS) $(LDHARDENING) $(LDFLAGS) \
		-o $@ $(SOURCES) $(LDLIBS)

deps-build:
	@scripts/install-deps $(BUILD_PACKAGES)

deps-test:
	@scripts/install-deps $(TEST_PACKAGES)

DEB_PACKAGES = $(BUILD_PACKAGES) dpkg-dev debhelper lintian
deps-deb:
	@scripts/install-deps $(DEB_PACKAGES)

# The Debian package, from the files git knows (tracked, or new and not ignored), built in
# build/deb; lintian must report no error and no warning on any of it.
deb: deps-deb
	rm -rf build/deb && mkdir -p build/deb/tunneld-$(VERSION)
	git ls-files -z --cached --others --exclude-standard | tar --null -T - -cf - | tar -xf - -C build/deb/tunneld-$(VERSION)
	cd build/deb/tunneld-$(VERSION) && dpkg-buildpackage -us -uc
	lintian --fail-on error,warning --info build/deb/tunneld_$(VERSION)_*.changes
	@ls build/deb/*.deb

# A CONNECT proxy on 127.0.0.1:3128, one tunneld per connection, in the foreground.
run: deps-build
	@$(MAKE) --no-print-directory all
	@echo
	@echo "tunneld is serving HTTP CONNECT and SOCKS5 on 127.0.0.1:3128 (port 443 only; Ctrl-C stops it)."
	@echo "Try it from another terminal:"
	@echo "    curl -v --proxy http://127.0.0.1:3128 https://example.com/"
	@echo "    curl -v --proxy socks5h://127.0.0.1:3128 https://example.com/"
	@echo "Each connection runs ./tunneld and logs one line here when it ends."
	@echo
	exec systemd-socket-activate --listen=127.0.0.1:3128 --accept --inetd ./tunneld --log=stderr

check: deps-test
	@$(MAKE) --no-print-directory all lint test fuzz-check sanitize-check valgrind-check

# Fuzzing: libFuzzer harnesses built from the same sources as tunneld, with
# ASan and UBSan; any crash, leak or report fails. make check gives each a few
# seconds, make fuzz five minutes.
FUZZERS = request auth proxy_protocol socks5 rules
FUZZ_SECONDS ?= 10
FUZZ_CFLAGS = -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all $(TUNNELD_CPPFLAGS)
build/fuzz/request_fuzzer: fuzz/request_fuzzer.c src/request.c src/request.h
build/fuzz/auth_fuzzer: fuzz/auth_fuzzer.c src/auth.c src/config_file.c src/lazy.c src/signals.c src/auth.h \
	src/config_file.h src/lazy.h src/signals.h
build/fuzz/proxy_protocol_fuzzer: fuzz/proxy_protocol_fuzzer.c src/proxy_protocol.c src/proxy_protocol.h
build/fuzz/socks5_fuzzer: fuzz/socks5_fuzzer.c src/socks5.c src/request.c src/socks5.h src/request.h src/failure.h
build/fuzz/rules_fuzzer: fuzz/rules_fuzzer.c src/rules.c src/rules_judge.c src/rules_image.c src/rules_file.c src/config_file.c src/policy.c \
	src/request.c src/upstream.c src/connector.c src/outgoing.c src/signals.c src/rules.h src/rules_image.h src/rules_file.h \
	src/config_file.h src/policy.h src/upstream.h src/connector.h src/outgoing.h
build/fuzz/%_fuzzer:
	@mkdir -p $(@D)
	clang $(FUZZ_CFLAGS) -o $@ $(filter %.c,$^)

fuzz-check: $(FUZZERS:%=build/fuzz/%_fuzzer)
	@for fuzzer in $(FUZZERS); do \
		mkdir -p build/fuzz/corpus-$$fuzzer; \
		echo "fuzz: $$fuzzer for $(FUZZ_SECONDS) s"; \
		build/fuzz/$${fuzzer}_fuzzer -max_total_time=$(FUZZ_SECONDS) -print_final_stats=1 \
			-artifact_prefix=build/fuzz/$$fuzzer- build/fuzz/corpus-$$fuzzer fuzz/corpus/$$fuzzer \
			>build/fuzz/$$fuzzer.log 2>&1 || { tail -50 build/fuzz/$$fuzzer.log; exit 1; }; \
		grep -E '^(Done|stat::number_of_executed_units)' build/fuzz/$$fuzzer.log; \
	done

fuzz:
	@$(MAKE) --no-print-directory fuzz-check FUZZ_SECONDS=300

# LD_PRELOAD peers for the tests: a probe that tries what a hijacked tunnel would (sandbox.bats), an
# old kernel (sandbox.bats), a check that hangs (acceptor.bats), a system out of pipes (faults.bats).
TEST_PRELOADS = build/tests/sandbox-probe.so build/tests/old-kernel.so build/tests/stuck-check.so build/tests/no-splice.so
build/tests/%.so: tests/peers/%.c
	@mkdir -p build/tests
	$(CC) -shared -fPIC -O1 -Wall -Wextra -o $@ $< -ldl

# The bats suite again against an ASan+UBSan build; any report fails. Not
# burst.bats, whose thousands of connections measure the activators' limits
# (and take minutes under ASan), nor package.bats, whose package holds its
# own build of tunneld: every other file, every parser and every phase.
SANITIZE_SUITES = $(filter-out tests/burst.bats tests/package.bats tests/sandbox.bats,$(wildcard tests/*.bats))
# Outside the clone, which the users some tests run tunneld as (xinetd's
# nobody, systemd's dynamic users) may not be able to enter; one per clone.
SANITIZER_LOG_DIR = /tmp/tunneld-sanitizer-reports.$(shell id -u).$(shell printf '%s' '$(CURDIR)' | cksum | cut -d' ' -f1)
build/tunneld-asan: $(SOURCES) $(HEADERS) tests/sanitizer-options.c
	@mkdir -p $(@D)
	clang $(TUNNELD_CPPFLAGS) -g -O1 -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=all \
		-DSANITIZER_LOG_DIR='"$(SANITIZER_LOG_DIR)"' -o $@ $(SOURCES) tests/sanitizer-options.c

sanitize-check: build/tunneld-asan $(TEST_PRELOADS)
	@rm -rf $(SANITIZER_LOG_DIR) && mkdir -p -m 1777 $(SANITIZER_LOG_DIR)
	TUNNELD=$(CURDIR)/build/tunneld-asan SANITIZER_LOG_DIR=$(SANITIZER_LOG_DIR) scripts/run-bats $(SANITIZE_SUITES)
	@if [ -n "$$(ls -A $(SANITIZER_LOG_DIR))" ]; then cat $(SANITIZER_LOG_DIR)/*; exit 1; fi
	@echo "sanitizers: no reports"

# The relay, request, SOCKS5 and jump cases with tunneld under valgrind; any error or leak fails.
VALGRIND_LOG_DIR = $(CURDIR)/build/valgrind
valgrind-check: tunneld $(TEST_PRELOADS)
	@rm -rf $(VALGRIND_LOG_DIR) && mkdir -p -m 1777 $(VALGRIND_LOG_DIR) && echo $(VALGRIND_LOG_DIR) >$(VALGRIND_LOG_DIR)/.dir
	TUNNELD=$(CURDIR)/tests/peers/valgrind-tunneld BULK_MIB=8 \
		scripts/run-bats tests/relay.bats tests/request.bats tests/socks5.bats tests/jump.bats
	@scripts/check-valgrind-logs $(VALGRIND_LOG_DIR)

test: tunneld $(TEST_PRELOADS)
	scripts/run-bats tests/

# The mutation pass, not part of check: each mutant of tests/mutants.list
# built and run against the tests of its area; a survivor fails it.
mutants: deps-test tunneld $(TEST_PRELOADS)
	scripts/mutants

lint:
	clang-tidy --quiet $(SOURCES) -- $(TUNNELD_CPPFLAGS) 2>&1 | { grep -v 'warnings generated' || true; }; \
		exit $${PIPESTATUS[0]}
	cppcheck --quiet --error-exitcode=1 --enable=warning,style,performance,portability \
		--inline-suppr --suppress=missingIncludeSystem -D_GNU_SOURCE $(SOURCES)
	mandoc -Tlint -W warning man/tunneld.8

# The benchmark: tunneld against a minimal helper, socat, systemd-socket-proxyd
# and a direct connection, in one run. It prints numbers; it never fails on them.
BENCH_TOOLS = build/bench/target build/bench/load build/bench/minimal build/bench/forks
build/bench/%: bench/%.c
	@mkdir -p $(@D)
	$(CC) -O2 -g -Wall -Wextra -o $@ $< -lpthread
# Static: the smallest process there is, for the fork ceiling.
build/bench/forks: bench/forks.c
	@mkdir -p $(@D)
	$(CC) -O2 -g -Wall -Wextra -static -o $@ $<

bench: deps-test tunneld $(BENCH_TOOLS)
	bench/run

install: tunneld
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(MANDIR)/man8 $(DESTDIR)$(SYSTEMDUNITDIR)
	install -m 755 tunneld $(DESTDIR)$(BINDIR)/tunneld
	install -m 644 man/tunneld.8 $(DESTDIR)$(MANDIR)/man8/tunneld.8
	install -m 644 tunneld.socket $(DESTDIR)$(SYSTEMDUNITDIR)/tunneld.socket
	sed 's|/usr/local/sbin/tunneld|$(BINDIR)/tunneld|' tunneld@.service > $(DESTDIR)$(SYSTEMDUNITDIR)/tunneld@.service
	chmod 644 $(DESTDIR)$(SYSTEMDUNITDIR)/tunneld@.service
	install -m 644 tunneld-acceptor.socket $(DESTDIR)$(SYSTEMDUNITDIR)/tunneld-acceptor.socket
	sed 's|/usr/local/sbin/tunneld|$(BINDIR)/tunneld|' tunneld-acceptor.service > $(DESTDIR)$(SYSTEMDUNITDIR)/tunneld-acceptor.service
	chmod 644 $(DESTDIR)$(SYSTEMDUNITDIR)/tunneld-acceptor.service

# Not part of install: tunneld.socket and xinetd would both want port 3128.
# The entry arrives with disable = yes; see README, "The ways it is used".
install-xinetd:
	install -d $(DESTDIR)$(XINETDDIR)
	sed 's|/usr/local/sbin/tunneld|$(BINDIR)/tunneld|' tunneld.xinetd > $(DESTDIR)$(XINETDDIR)/tunneld
	chmod 644 $(DESTDIR)$(XINETDDIR)/tunneld

uninstall:
	rm -f $(DESTDIR)$(BINDIR)/tunneld $(DESTDIR)$(MANDIR)/man8/tunneld.8 \
		$(DESTDIR)$(SYSTEMDUNITDIR)/tunneld.socket $(DESTDIR)$(SYSTEMDUNITDIR)/tunneld@.service \
		$(DESTDIR)$(SYSTEMDUNITDIR)/tunneld-acceptor.socket $(DESTDIR)$(SYSTEMDUNITDIR)/tunneld-acceptor.service \
		$(DESTDIR)$(XINETDDIR)/tunneld

clean:
	rm -rf tunneld build $(SANITIZER_LOG_DIR)
