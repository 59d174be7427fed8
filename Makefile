# The two commands a fresh machine needs (see README):
#   make run    install everything, mount ./data on ./mnt, print what to try next
#   make test   install everything, run the whole test suite
# A system-wide install (docs/operations.md), as root:
#   make install     logfs in $(VENV), linked as $(PREFIX)/bin/logfs; the fstab helper
#                    $(SBINDIR)/mount.fuse.logfs; logfs@.service; man page; completions
#   make uninstall   remove exactly what `make install` put there
#   make man         the man page and bash/zsh completions, generated into build/
DATA ?= $(CURDIR)/data
MNT  ?= $(CURDIR)/mnt
PYTEST_ARGS ?=
# the mount's Kafka listener (docs/kafka.md); `make run KAFKA=` mounts without one
KAFKA ?= 127.0.0.1:9092
VENV ?= /opt/logfs
PREFIX ?= /usr/local
SBINDIR ?= /sbin
SYSTEMDDIR ?= /etc/systemd/system
INSTALL_VARS = VENV="$(VENV)" PREFIX="$(PREFIX)" SBINDIR="$(SBINDIR)" SYSTEMDDIR="$(SYSTEMDDIR)"

.PHONY: run test bootstrap bench umount install uninstall man

bootstrap:
	@./scripts/bootstrap.sh

run: bootstrap
	@mkdir -p "$(DATA)" "$(MNT)"
	@.venv/bin/logfs mount $(if $(KAFKA),-o kafka=$(KAFKA)) "$(DATA)" "$(MNT)" || \
	  { $(if $(KAFKA),echo "(Kafka's port busy? make run KAFKA=127.0.0.1:PORT or KAFKA= for no listener)" >&2;) exit 1; }
	@echo "logfs is mounted: data in $(DATA), files in $(MNT)$(if $(KAFKA), and Kafka clients on $(KAFKA))"
	@echo "try:  mkdir $(MNT)/orders && echo '{\"id\":1}' >> $(MNT)/orders/eu && cat $(MNT)/orders/eu"
	@echo "      .venv/bin/logfs describe $(MNT)/orders/eu"
	@$(if $(KAFKA),echo "      kcat -b $(KAFKA) -C -t orders.eu -o beginning -e    # the log as a Kafka topic",true)
	@echo "stop: .venv/bin/logfs umount $(MNT)"

test: bootstrap
	@./scripts/run-tests.sh $(PYTEST_ARGS)

bench: bootstrap
	@.venv/bin/python -m logfs.bench $(BENCH_ARGS)

umount:
	-@.venv/bin/logfs umount "$(MNT)"

man: bootstrap
	@./scripts/install.sh generate build
	@echo "build/man/logfs.1 (man -l build/man/logfs.1), build/completions/{logfs.bash,_logfs}"

install: bootstrap
	@$(INSTALL_VARS) ./scripts/install.sh install

uninstall:
	@$(INSTALL_VARS) ./scripts/install.sh uninstall
