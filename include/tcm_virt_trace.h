/* SPDX-License-Identifier: GPL-2.0 */
/*
 * tcm_virt's tracepoints (events/tcm_virt/ in tracefs).  Defined in
 * rust/bindings/trace.c; the Rust code calls them through
 * rust/glue/trace.rs, which tests each one's static key inline, so that a
 * disabled tracepoint costs one patched jump and no call.
 *
 * Every event names its device as the front end (0 vhost, 1 megasas) and
 * the device number of its debugfs directory (vhost-N, megasas-N), and
 * the queue: the virtqueue index for vhost (2 is the first request
 * queue), 0 for megasas.  A command's tag is the virtio-scsi request tag,
 * or the MFI frame context for megasas.
 */
#undef TRACE_SYSTEM
#define TRACE_SYSTEM tcm_virt

#if !defined(_TCM_VIRT_TRACE_H) || defined(TRACE_HEADER_MULTI_READ)
#define _TCM_VIRT_TRACE_H

#include <linux/tracepoint.h>

#define tcm_virt_show_front(f)	__print_symbolic(f, { 0, "vhost" }, { 1, "megasas" })

/* A command handed to target core. */
TRACE_EVENT(tcm_virt_cmd_submit,
	TP_PROTO(u8 front, u32 dev, u16 queue, u64 tag, u64 lun, u8 opcode,
		 u8 dir, u32 len),
	TP_ARGS(front, dev, queue, tag, lun, opcode, dir, len),
	TP_STRUCT__entry(
		__field(u8, front)
		__field(u32, dev)
		__field(u16, queue)
		__field(u64, tag)
		__field(u64, lun)
		__field(u8, opcode)
		__field(u8, dir)
		__field(u32, len)
	),
	TP_fast_assign(
		__entry->front = front;
		__entry->dev = dev;
		__entry->queue = queue;
		__entry->tag = tag;
		__entry->lun = lun;
		__entry->opcode = opcode;
		__entry->dir = dir;
		__entry->len = len;
	),
	TP_printk("%s-%u q=%u tag=%#llx lun=%llu opcode=%#04x dir=%s len=%u",
		  tcm_virt_show_front(__entry->front), __entry->dev,
		  __entry->queue, __entry->tag, __entry->lun, __entry->opcode,
		  __print_symbolic(__entry->dir, { 0, "none" }, { 1, "write" },
				   { 2, "read" }),
		  __entry->len)
);

/*
 * A command answered: its SCSI status, the response (virtio-scsi response
 * code, or MFI command status) and the time since its submission
 * (0 when the event was enabled after the command was submitted).
 */
TRACE_EVENT(tcm_virt_cmd_complete,
	TP_PROTO(u8 front, u32 dev, u16 queue, u64 tag, u64 lun, u8 opcode,
		 u8 status, u8 response, u32 len, u64 latency_ns),
	TP_ARGS(front, dev, queue, tag, lun, opcode, status, response, len,
		latency_ns),
	TP_STRUCT__entry(
		__field(u8, front)
		__field(u32, dev)
		__field(u16, queue)
		__field(u64, tag)
		__field(u64, lun)
		__field(u8, opcode)
		__field(u8, status)
		__field(u8, response)
		__field(u32, len)
		__field(u64, latency_ns)
	),
	TP_fast_assign(
		__entry->front = front;
		__entry->dev = dev;
		__entry->queue = queue;
		__entry->tag = tag;
		__entry->lun = lun;
		__entry->opcode = opcode;
		__entry->status = status;
		__entry->response = response;
		__entry->len = len;
		__entry->latency_ns = latency_ns;
	),
	TP_printk("%s-%u q=%u tag=%#llx lun=%llu opcode=%#04x status=%#04x response=%u len=%u latency_ns=%llu",
		  tcm_virt_show_front(__entry->front), __entry->dev,
		  __entry->queue, __entry->tag, __entry->lun, __entry->opcode,
		  __entry->status, __entry->response, __entry->len,
		  __entry->latency_ns)
);

/*
 * A request refused before target core: why (see tcm_virt_show_refusal),
 * and the response the initiator got.
 */
#define tcm_virt_show_refusal(r)					\
	__print_symbolic(r, { 0, "malformed" }, { 1, "bad_target" },	\
			 { 2, "pin_failure" }, { 3, "busy" },		\
			 { 4, "transport" })

TRACE_EVENT(tcm_virt_cmd_refused,
	TP_PROTO(u8 front, u32 dev, u16 queue, u64 tag, u8 reason,
		 u8 response),
	TP_ARGS(front, dev, queue, tag, reason, response),
	TP_STRUCT__entry(
		__field(u8, front)
		__field(u32, dev)
		__field(u16, queue)
		__field(u64, tag)
		__field(u8, reason)
		__field(u8, response)
	),
	TP_fast_assign(
		__entry->front = front;
		__entry->dev = dev;
		__entry->queue = queue;
		__entry->tag = tag;
		__entry->reason = reason;
		__entry->response = response;
	),
	TP_printk("%s-%u q=%u tag=%#llx reason=%s response=%u",
		  tcm_virt_show_front(__entry->front), __entry->dev,
		  __entry->queue, __entry->tag,
		  tcm_virt_show_refusal(__entry->reason), __entry->response)
);

#define tcm_virt_show_tmf(f)						\
	__print_symbolic(f, { 0, "abort_task" }, { 1, "abort_task_set" }, \
			 { 2, "clear_aca" }, { 3, "clear_task_set" },	\
			 { 4, "i_t_nexus_reset" }, { 5, "lun_reset" },	\
			 { 6, "query_task" }, { 7, "query_task_set" })

/* A task management function started (ref_tag: the task it names). */
TRACE_EVENT(tcm_virt_tmf_start,
	TP_PROTO(u8 front, u32 dev, u8 function, u64 lun, u64 ref_tag),
	TP_ARGS(front, dev, function, lun, ref_tag),
	TP_STRUCT__entry(
		__field(u8, front)
		__field(u32, dev)
		__field(u8, function)
		__field(u64, lun)
		__field(u64, ref_tag)
	),
	TP_fast_assign(
		__entry->front = front;
		__entry->dev = dev;
		__entry->function = function;
		__entry->lun = lun;
		__entry->ref_tag = ref_tag;
	),
	TP_printk("%s-%u function=%s lun=%llu ref_tag=%#llx",
		  tcm_virt_show_front(__entry->front), __entry->dev,
		  tcm_virt_show_tmf(__entry->function), __entry->lun,
		  __entry->ref_tag)
);

/* A task management function carried out by target core, and how. */
TRACE_EVENT(tcm_virt_tmf_done,
	TP_PROTO(u8 front, u32 dev, u8 function, u64 lun, u64 ref_tag,
		 u8 outcome, u64 latency_ns),
	TP_ARGS(front, dev, function, lun, ref_tag, outcome, latency_ns),
	TP_STRUCT__entry(
		__field(u8, front)
		__field(u32, dev)
		__field(u8, function)
		__field(u64, lun)
		__field(u64, ref_tag)
		__field(u8, outcome)
		__field(u64, latency_ns)
	),
	TP_fast_assign(
		__entry->front = front;
		__entry->dev = dev;
		__entry->function = function;
		__entry->lun = lun;
		__entry->ref_tag = ref_tag;
		__entry->outcome = outcome;
		__entry->latency_ns = latency_ns;
	),
	TP_printk("%s-%u function=%s lun=%llu ref_tag=%#llx outcome=%s latency_ns=%llu",
		  tcm_virt_show_front(__entry->front), __entry->dev,
		  tcm_virt_show_tmf(__entry->function), __entry->lun,
		  __entry->ref_tag,
		  __print_symbolic(__entry->outcome, { 0, "complete" },
				   { 1, "succeeded" }, { 2, "rejected" },
				   { 3, "incorrect_lun" }, { 4, "failed" }),
		  __entry->latency_ns)
);

/*
 * An event delivered to the initiator: LUN hotplug (added 1, removed 2)
 * or, with missed set, the events-missed flag.
 */
TRACE_EVENT(tcm_virt_event,
	TP_PROTO(u8 front, u32 dev, u8 kind, u64 lun, u8 missed),
	TP_ARGS(front, dev, kind, lun, missed),
	TP_STRUCT__entry(
		__field(u8, front)
		__field(u32, dev)
		__field(u8, kind)
		__field(u64, lun)
		__field(u8, missed)
	),
	TP_fast_assign(
		__entry->front = front;
		__entry->dev = dev;
		__entry->kind = kind;
		__entry->lun = lun;
		__entry->missed = missed;
	),
	TP_printk("%s-%u kind=%s lun=%llu missed=%u",
		  tcm_virt_show_front(__entry->front), __entry->dev,
		  __print_symbolic(__entry->kind, { 0, "none" },
				   { 1, "lun_added" }, { 2, "lun_removed" }),
		  __entry->lun, __entry->missed)
);

#endif /* _TCM_VIRT_TRACE_H */

/* This part must be outside the multi-read protection. */
#undef TRACE_INCLUDE_PATH
#define TRACE_INCLUDE_PATH .
#undef TRACE_INCLUDE_FILE
#define TRACE_INCLUDE_FILE tcm_virt_trace
#include <trace/define_trace.h>
