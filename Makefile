# SPDX-License-Identifier: GPL-2.0
#
# tcm_virt - the one entry point.  `make help` lists the targets.
#
# KDIR is a prepared Linux 7.3 *build* tree (the O= directory of a built
# kernel).  By default it is the project's cached debug test kernel, built
# on first use by `make kernel`.

TOP := $(CURDIR)
DEFAULT_KDIR := $(shell $(TOP)/scripts/kernel.sh --path-only debug 2>/dev/null)
KDIR ?= $(DEFAULT_KDIR)
L2_KDIR := $(shell $(TOP)/scripts/kernel.sh --path-only l2 2>/dev/null)
SRCTREE = $(shell readlink -f $(KDIR)/source)
# Use the toolchain the kernel tree was built with.  LLVM=-19 is what the
# project's kernels use (bookworm's unversioned clang is 14).
KLLVM = $(if $(shell grep -s '^CONFIG_CC_IS_CLANG=y' $(KDIR)/.config),LLVM=$(or $(LLVM),-19))
KMAKE = $(MAKE) -C $(KDIR) M=$(TOP) $(KLLVM)
RUSTFMT_CFG = --config-path $(SRCTREE)/.rustfmt.toml --edition 2021
RS_SOURCES = $(shell find rust -name '*.rs' ! -name '*generated*' | sort)

# `make TEST=name check` runs one VM test; `make check` runs them all.
TEST ?=

.PHONY: all module modules deps kernel l2-kernel clippy fmt fmtcheck stackcheck check run bench \
	cargo-test vm-check clean help rust-analyzer

all: module

help:
	@sed -n 's/^##//p' $(TOP)/Documentation/admin-guide.rst 2>/dev/null || true
	@echo "targets: deps kernel module clippy fmt fmtcheck check run bench clean"
	@echo "variables: KDIR=<kernel build tree> TEST=<vm test name> CLIPPY=1"

## deps: install packages, rust-src, bindgen-cli, kernel source (idempotent)
deps:
	@bash $(TOP)/scripts/deps.sh

## kernel: build (once, cached) the debug test kernel and the nested L2 kernel
kernel: deps
	@$(TOP)/scripts/kernel.sh debug >/dev/null
	@$(TOP)/scripts/kernel.sh l2 >/dev/null

l2-kernel: deps
	@$(TOP)/scripts/kernel.sh l2 >/dev/null

# The module is rebuilt from scratch whenever the kernel tree changes: the Rust
# symbols it imports carry a hash of the kernel crate.
module modules:
	@if [ "$(KDIR)" = "$(DEFAULT_KDIR)" ] && [ ! -f "$(KDIR)/.tcm_virt-done" ]; then \
		$(MAKE) --no-print-directory kernel; fi
	@test -f $(KDIR)/Module.symvers || { echo "KDIR=$(KDIR) is not a built kernel tree" >&2; exit 1; }
	@stamp="$(KDIR) $$(stat -c %Y $(KDIR)/vmlinux 2>/dev/null)"; \
	if [ "$$(cat .kdir-stamp 2>/dev/null)" != "$$stamp" ]; then \
		$(KMAKE) clean >/dev/null 2>&1 || true; echo "$$stamp" > .kdir-stamp; fi
	$(KMAKE) modules

clippy:
	$(MAKE) module CLIPPY=1
	cd tools && cargo clippy -q --workspace --all-targets -- -D warnings

fmt:
	rustfmt $(RUSTFMT_CFG) $(RS_SOURCES)
	cd tools && cargo fmt

## stackcheck: no function of the module has a stack frame over 2 KiB
stackcheck: module
	@bash $(TOP)/scripts/stackcheck.sh $(TOP)/tcm_virt.ko 2048

fmtcheck:
	rustfmt --check $(RUSTFMT_CFG) $(RS_SOURCES)
	cd tools && cargo fmt --check

rust-analyzer:
	$(KMAKE) rust-analyzer

## check: all tests (cargo test + the VM suite); closes with 'N passed, N failed'
check: deps kernel
	@$(MAKE) --no-print-directory module
	@KDIR=$(KDIR) L2_KDIR=$(L2_KDIR) bash $(TOP)/scripts/check.sh $(TEST)

## run: build, boot the test kernel, load tcm_virt, configure a LUN with targetcli
run: deps kernel
	@$(MAKE) --no-print-directory module
	@KDIR=$(KDIR) L2_KDIR=$(L2_KDIR) bash $(TOP)/scripts/vm.sh $(TOP)/scripts/run-demo.sh

## bench: build the non-debug kernel (once, cached), run the benchmarks in it
BENCH_KDIR := $(shell $(TOP)/scripts/kernel.sh --path-only bench 2>/dev/null)
bench: deps
	@$(TOP)/scripts/kernel.sh bench >/dev/null
	@$(MAKE) --no-print-directory module KDIR=$(BENCH_KDIR)
	@cd $(TOP)/tools && cargo build --release -q -p vsdrv -p mfi
	@KDIR=$(BENCH_KDIR) bash $(TOP)/scripts/vm.sh $(TOP)/scripts/bench.sh

clean:
	-$(KMAKE) clean 2>/dev/null
	rm -f .kdir-stamp rust-project.json
	rm -rf tools/target
