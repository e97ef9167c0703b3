# SPDX-License-Identifier: GPL-2.0
#
# tcm_virt - the one entry point.  `make help` lists the targets.
#
# KDIR is a prepared Linux 7.3 *build* tree (the O= directory of a built
# kernel).  By default it is the project's cached debug test kernel, built
# on first use by `make kernel`.

TOP := $(CURDIR)
# The cached kernels' paths depend on the installed kernel source and
# toolchain versions, which `make deps` may install during this very run: so
# they are computed when a recipe first uses them (after its prerequisites
# ran, then kept), never when the Makefile is parsed.  An empty KDIR, from
# the environment or the command line, means the default tree.  None of them
# is exported: a recipe passes what it needs by name.
kernel_path = $(shell $(TOP)/scripts/kernel.sh --path-only $(1) 2>/dev/null)
DEFAULT_KDIR = $(eval DEFAULT_KDIR := $(call kernel_path,debug))$(DEFAULT_KDIR)
L2_KDIR = $(eval L2_KDIR := $(call kernel_path,l2))$(L2_KDIR)
BENCH_KDIR = $(eval BENCH_KDIR := $(call kernel_path,bench))$(BENCH_KDIR)
USER_KDIR := $(strip $(KDIR))
ifeq ($(USER_KDIR),)
override KDIR = $(DEFAULT_KDIR)
# `module` builds the default kernel first when it is not there.  This test
# runs at parse time with whatever is installed; before `deps` it can only
# err towards running `kernel`, which is quick when the kernels are cached.
MODULE_PREREQ := $(if $(wildcard $(call kernel_path,debug)/.tcm_virt-done),,kernel)
else
MODULE_PREREQ :=
endif
unexport KDIR DEFAULT_KDIR L2_KDIR BENCH_KDIR
SRCTREE = $(shell readlink -f $(KDIR)/source)
# Use the toolchain the kernel tree was built with.  LLVM=-19 is what the
# project's kernels use (bookworm's unversioned clang is 14).
KLLVM = $(if $(shell grep -s '^CONFIG_CC_IS_CLANG=y' $(KDIR)/.config),LLVM=$(or $(LLVM),-19))
KMAKE = $(MAKE) -C $(KDIR) M=$(TOP) $(KLLVM)
RUSTFMT_CFG = --config-path $(SRCTREE)/.rustfmt.toml --edition 2021
RS_SOURCES = $(shell find rust -name '*.rs' ! -name '*generated*' | sort)

# `make TEST=name check` runs one VM test; `make check` runs them all.
TEST ?=

.PHONY: all module modules deps kernel l2-kernel clippy fmt fmtcheck stackcheck panic-sites check run run-megasas soak fuzz bench \
	clean help rust-analyzer kdir install uninstall

all: module

help:
	@sed -n 's/^##//p' $(TOP)/Documentation/admin-guide.rst 2>/dev/null || true
	@echo "targets: deps kernel module install uninstall clippy fmt fmtcheck stackcheck panic-sites check run run-megasas soak fuzz bench clean"
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
module modules: $(MODULE_PREREQ)
	@test -f "$(KDIR)/Module.symvers" || { echo "KDIR='$(KDIR)' is not a built kernel tree" >&2; exit 1; }
	@stamp="$(KDIR) $$(stat -c %Y $(KDIR)/vmlinux 2>/dev/null)"; \
	if [ "$$(cat .kdir-stamp 2>/dev/null)" != "$$stamp" ]; then \
		$(KMAKE) clean >/dev/null 2>&1 || true; echo "$$stamp" > .kdir-stamp; fi
	$(KMAKE) modules

## kdir: print the kernel build tree the module is built against
kdir:
	@echo "$(KDIR)"

clippy:
	$(MAKE) module CLIPPY=1
	cd tools && cargo clippy -q --workspace --all-targets -- -D warnings

fmt:
	rustfmt $(RUSTFMT_CFG) $(RS_SOURCES)
	cd tools && cargo fmt

## stackcheck: no function of the module has a stack frame over 2 KiB
stackcheck: module
	@bash $(TOP)/scripts/stackcheck.sh $(TOP)/tcm_virt.ko 2048

## panic-sites: every call to a Rust panic function in tcm_virt.ko, with
##   its source location (the list robustness.rst's "Panics" reviews)
##   and fails over PANIC_MAX of them (the debug build's count when they
##   were last reviewed: raise it with the review of the new ones)
PANIC_MAX ?= 165
panic-sites: module
	@python3 $(TOP)/scripts/panic-sites.py --summary --max $(PANIC_MAX) $(TOP)/tcm_virt.ko

fmtcheck:
	rustfmt --check $(RUSTFMT_CFG) $(RS_SOURCES)
	cd tools && cargo fmt --check

rust-analyzer:
	$(KMAKE) rust-analyzer

## check: deps, kernels, module, then all tests (harness, cargo test, lints,
## the VM suite); prints each phase's time and closes with 'N passed, N failed'
check:
	@USER_KDIR="$(USER_KDIR)" bash $(TOP)/scripts/check.sh $(TEST)

## run: build, boot the test kernel, load tcm_virt, configure a LUN with targetcli
run: deps kernel
	@$(MAKE) --no-print-directory module
	@KDIR=$(KDIR) L2_KDIR=$(L2_KDIR) bash $(TOP)/scripts/vm.sh $(TOP)/scripts/run-demo.sh

## run-megasas: the same with a MegaRAID SAS adapter: tools/vfu-megasas on /dev/tcm-megasas, a guest of QEMU 11.x (vfio-user-pci) with its own megaraid_sas driver
run-megasas: deps kernel
	@$(MAKE) --no-print-directory module
	@cd $(TOP)/tools && cargo build --release -q -p vfu-megasas
	@KDIR=$(KDIR) L2_KDIR=$(L2_KDIR) bash $(TOP)/scripts/vm.sh $(TOP)/scripts/run-megasas.sh

## soak: the long campaigns in the test VM: 10,000 TMF race rounds, 3,000 closes racing I/O and TMFs, 5,000 rounds of I/O under call eventfd swaps, 200 runs per fault kind, 100 nested QEMUs SIGKILLed with writes in flight (SOAK_TESTS picks some)
soak: deps kernel
	@$(MAKE) --no-print-directory module
	@cd $(TOP)/tools && cargo build --release -q
	@KDIR=$(KDIR) L2_KDIR=$(L2_KDIR) VM_TIMEOUT=$${VM_TIMEOUT:-21600} bash $(TOP)/scripts/vm.sh \
		env TEST_STREAM=1 CLOSE_RACE_ROUNDS=$${CLOSE_RACE_ROUNDS:-3000} \
		CALL_RACE_ROUNDS=$${CALL_RACE_ROUNDS:-5000} FAULT_RUNS=$${FAULT_RUNS:-200} \
		STRESS_ROUNDS=$${STRESS_ROUNDS:-10000} KILL_ROUNDS=$${KILL_ROUNDS:-100} \
		TEST_TIMEOUT=$${TEST_TIMEOUT:-7200} $(TOP)/scripts/vm-suite.sh \
		$${SOAK_TESTS:-48-race 49-faults soak-qemu_kills}

## fuzz: tools/fuzz in the test VM, 10^6 requests on the vhost device and 10^6 frames on the megasas adapter; new corpus inputs kept in tools/fuzz/corpus/
fuzz: deps kernel
	@$(MAKE) --no-print-directory module
	@cd $(TOP)/tools && cargo build --release -q
	@KDIR=$(KDIR) L2_KDIR=$(L2_KDIR) bash $(TOP)/scripts/fuzz.sh

## bench: build the non-debug kernel (once, cached), run the benchmarks in it
# BENCH_CPU: the VM's CPU model.  Without ERMS, FSRM and FSRS the guest
# kernel copies and clears memory with its word loops instead of rep
# movsb/stosb, which TCG runs 350 and 50 times slower than the host where
# ordinary loads and stores run 6 to 9 times slower
# (Documentation/benchmarks.rst, "String instructions under emulation").
# BENCH_CPU=max: vng's model.
BENCH_CPU ?= max,erms=off,fsrm=off,fsrs=off,fzrm=off,fsrc=off
# BENCH_IDLE: the guest's idle loop.  poll (the default): the guest's
# idle=poll, an idle vCPU spins rather than halting, as a KVM host polls
# a halted vCPU (halt_poll_ns, 200 us) before its thread sleeps.  halt:
# the guest's own default; under TCG a halted vCPU's thread sleeps in
# QEMU, and whether a QD1 run's vCPUs halt between I/Os is a draw at the
# run's start that makes it three times faster or slower
# (Documentation/benchmarks.rst, "Halted vCPUs").
BENCH_IDLE ?= poll
# The knobs of scripts/bench.sh, handed to it inside the VM (empty: its
# defaults).  Their text as given ($(value)), quoted for the shell: make
# would expand a regular expression's $| or $' in BENCH_ROWS.
BENCH_ENV = $(foreach v,BENCH_N BENCH_SECS BENCH_RUNS BENCH_ROWS BENCH_RAW BENCH_ONLY BENCH_MFI_KICK,'$(v)=$(subst ','\'',$(value $(v)))')
bench: deps
	@$(TOP)/scripts/kernel.sh bench >/dev/null
	@$(MAKE) --no-print-directory module KDIR=$(BENCH_KDIR)
	@cd $(TOP)/tools && cargo build --release -q -p vsdrv -p mfi
	@KDIR=$(BENCH_KDIR) VM_QEMU_OPTS="$(VM_QEMU_OPTS) -cpu $(BENCH_CPU)" \
		VM_APPEND="$(if $(filter halt,$(BENCH_IDLE)),,idle=$(BENCH_IDLE))" \
		bash $(TOP)/scripts/vm.sh env $(BENCH_ENV) $(TOP)/scripts/bench.sh

## install: install tcm_virt.ko as the vhost fabric's module (targetcli loads
##   it as tcm_vhost) for the kernel of KDIR (the test kernel unless KDIR is given)
install: module
	@KVER=$$(cat $(KDIR)/include/config/kernel.release) $(TOP)/scripts/install.sh $(TOP)/tcm_virt.ko

## uninstall: remove what `make install` installed
uninstall:
	@KVER=$$(cat $(KDIR)/include/config/kernel.release) $(TOP)/scripts/install.sh --uninstall

clean:
	-$(KMAKE) clean 2>/dev/null
	rm -f .kdir-stamp rust-project.json
	rm -rf tools/target
