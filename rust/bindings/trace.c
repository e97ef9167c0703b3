// SPDX-License-Identifier: GPL-2.0
/*
 * tcm_virt's tracepoints, defined from include/tcm_virt_trace.h, with the
 * rust_do_trace_*() entry points the Rust side calls once it has seen the
 * tracepoint's static key enabled (rust/glue/trace.rs).
 */
#define CREATE_TRACE_POINTS
#define CREATE_RUST_TRACE_POINTS
#include "tcm_virt_trace.h"
