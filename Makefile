# The two commands a fresh machine needs (see README):
#   make run    install everything, mount ./data on ./mnt, print what to try next
#   make test   install everything, run the whole test suite
DATA ?= $(CURDIR)/data
MNT  ?= $(CURDIR)/mnt
PYTEST_ARGS ?=

.PHONY: run test bootstrap bench umount clean

bootstrap:
	@./scripts/bootstrap.sh

run: bootstrap
	@mkdir -p "$(DATA)" "$(MNT)"
	@.venv/bin/logfs mount "$(DATA)" "$(MNT)"
	@echo "logfs is mounted: data in $(DATA), files in $(MNT)"
	@echo "try:  mkdir $(MNT)/orders && echo '{\"id\":1}' >> $(MNT)/orders/eu && cat $(MNT)/orders/eu"
	@echo "      .venv/bin/logfs describe $(MNT)/orders/eu"
	@echo "stop: .venv/bin/logfs umount $(MNT)"

test: bootstrap
	@./scripts/run-tests.sh $(PYTEST_ARGS)

bench: bootstrap
	@.venv/bin/python -m logfs.bench $(BENCH_ARGS)

umount:
	-@.venv/bin/logfs umount "$(MNT)"
