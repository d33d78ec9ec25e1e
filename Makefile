# tunneld: make (build), make run (try it), make check (every test), make install.
# make run and make check install what they need with apt-get on Debian.

SHELL = /bin/bash

PREFIX ?= /usr/local
BINDIR ?= $(PREFIX)/sbin
MANDIR ?= $(PREFIX)/share/man
SYSTEMDUNITDIR ?= $(shell pkg-config --variable=systemdsystemunitdir systemd 2>/dev/null || echo /lib/systemd/system)
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

SOURCES = tunneld.c src/request.c src/policy.c src/auth.c src/response.c src/connector.c src/relay.c src/log.c \
	src/systemd.c src/lazy.c
HEADERS = $(wildcard src/*.h)

BUILD_PACKAGES = gcc make libc6-dev pkg-config libsystemd-dev systemd
TEST_PACKAGES = $(BUILD_PACKAGES) bats curl socat netcat-openbsd openssl openssh-server openssh-client apache2-utils whois \
	stunnel4 xinetd haproxy python3 mandoc clang clang-tidy cppcheck valgrind libclang-rt-14-dev \
	iproute2 procps

.PHONY: all run check test lint install uninstall clean deps-build deps-test

all: tunneld

tunneld: $(SOURCES) $(HEADERS)
	$(CC) $(TUNNELD_CPPFLAGS) $(CPPFLAGS) $(WARNINGS) $(HARDENING) $(CFLAGS) $(LDHARDENING) $(LDFLAGS) \
		-o $@ $(SOURCES) $(LDLIBS)

deps-build:
	@scripts/install-deps $(BUILD_PACKAGES)

deps-test:
	@scripts/install-deps $(TEST_PACKAGES)

# A CONNECT proxy on 127.0.0.1:3128, one tunneld per connection, in the foreground.
run: deps-build
	@$(MAKE) --no-print-directory all
	@echo
	@echo "tunneld is serving HTTP CONNECT on 127.0.0.1:3128 (port 443 only; Ctrl-C stops it)."
	@echo "Try it from another terminal:"
	@echo "    curl -v --proxy http://127.0.0.1:3128 https://example.com/"
	@echo "Each connection runs ./tunneld and logs one line here when it ends."
	@echo
	exec systemd-socket-activate --listen=127.0.0.1:3128 --accept --inetd ./tunneld --log=stderr

check: deps-test
	@$(MAKE) --no-print-directory all lint test

test: tunneld
	scripts/run-bats tests/

lint:
	clang-tidy --quiet $(SOURCES) -- $(TUNNELD_CPPFLAGS) 2>&1 | { grep -v 'warnings generated' || true; }; \
		exit $${PIPESTATUS[0]}
	cppcheck --quiet --error-exitcode=1 --enable=warning,style,performance,portability \
		--inline-suppr --suppress=missingIncludeSystem -D_GNU_SOURCE $(SOURCES)
	mandoc -Tlint -W warning man/tunneld.8

install: tunneld
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(MANDIR)/man8 $(DESTDIR)$(SYSTEMDUNITDIR)
	install -m 755 tunneld $(DESTDIR)$(BINDIR)/tunneld
	install -m 644 man/tunneld.8 $(DESTDIR)$(MANDIR)/man8/tunneld.8
	install -m 644 tunneld.socket $(DESTDIR)$(SYSTEMDUNITDIR)/tunneld.socket
	sed 's|/usr/local/sbin/tunneld|$(BINDIR)/tunneld|' tunneld@.service > $(DESTDIR)$(SYSTEMDUNITDIR)/tunneld@.service
	chmod 644 $(DESTDIR)$(SYSTEMDUNITDIR)/tunneld@.service
	install -d $(DESTDIR)$(XINETDDIR)
	sed 's|/usr/local/sbin/tunneld|$(BINDIR)/tunneld|' tunneld.xinetd > $(DESTDIR)$(XINETDDIR)/tunneld
	chmod 644 $(DESTDIR)$(XINETDDIR)/tunneld

uninstall:
	rm -f $(DESTDIR)$(BINDIR)/tunneld $(DESTDIR)$(MANDIR)/man8/tunneld.8 \
		$(DESTDIR)$(SYSTEMDUNITDIR)/tunneld.socket $(DESTDIR)$(SYSTEMDUNITDIR)/tunneld@.service \
		$(DESTDIR)$(XINETDDIR)/tunneld

clean:
	rm -f tunneld
