/* SPDX-License-Identifier: GPL-2.0 WITH Linux-syscall-note */
/*
 * tcm_virt megasas front end: a MegaRAID SAS (MFI) adapter whose queues are
 * mapped into userspace.  See Documentation/megasas.rst.
 *
 * Set-up, on an open file of /dev/tcm-megasas (one file = one adapter):
 *
 *  1. VHOST_SET_OWNER, then VHOST_SET_MEM_TABLE (struct vhost_memory): the
 *     "physical" addresses the frames use (frame, SGL, sense, queue info,
 *     reply queue) are translated through this table into the caller's
 *     memory, as vhost does for a guest's RAM.
 *  2. VHOST_SET_VRING_KICK and VHOST_SET_VRING_CALL on index 0: the kick
 *     eventfd (the doorbell) and the completion eventfd (irqfd-compatible).
 *     TCM_MEGASAS_DOORBELL does the kick's work without an eventfd.
 *  3. TCM_MEGASAS_SET_ENDPOINT: bind to a TPG of the fabric (targetcli).
 *  4. mmap() TCM_MEGASAS_REGS_SIZE bytes at offset 0: struct
 *     tcm_megasas_regs.  Post a frame by writing its encoded address into
 *     iq[iq_producer % TCM_MEGASAS_IQ_ENTRIES], then advancing iq_producer,
 *     then kicking (or, after a full barrier, not when iq_no_kick is set).
 *  5. Send MFI_CMD_INIT (usually polled) to set up the reply queue.
 *
 * All fields are little endian (native on the supported hosts).
 */
#ifndef _UAPI_LINUX_TCM_MEGASAS_H
#define _UAPI_LINUX_TCM_MEGASAS_H

#include <linux/types.h>
#include <linux/ioctl.h>

#define TCM_MEGASAS_ABI_VERSION		1

/* Entries of the inbound queue (frame addresses posted, not yet read). */
#define TCM_MEGASAS_IQ_ENTRIES		1024

/* Personality: which MFI devices the TPG's LUNs appear as. */
#define TCM_MEGASAS_EP_JBOD		0x0001	/* system PDs, device id = LUN */

struct tcm_megasas_endpoint {
	char wwpn[224];		/* NUL-terminated WWPN of the fabric */
	__u16 tpgt;		/* TPG tag */
	__u16 flags;		/* TCM_MEGASAS_EP_* */
	__u32 reserved[7];	/* must be 0 */
};

/*
 * The register page.  "kernel" fields are written by the module only;
 * "user" fields by the initiator only.
 */
struct tcm_megasas_regs {
	__u32 fw_status;	/* kernel: MFI status word (outbound scratch pad 0) */
	__u32 abi_version;	/* kernel: TCM_MEGASAS_ABI_VERSION */
	__u32 iq_entries;	/* kernel: TCM_MEGASAS_IQ_ENTRIES */
	__u32 iq_producer;	/* user: free-running count of entries posted */
	__u32 iq_consumer;	/* kernel: free-running count of entries read */
	/*
	 * kernel: free-running count of replies posted, added to after the
	 * reply queue's producer index that publishes them is written: a
	 * count read is never ahead of the entries published (a VMM's reply
	 * interrupt status)
	 */
	__u32 replies;
	/*
	 * kernel: free-running count of posted entries refused (not a frame:
	 * bad address, posted again while in flight, skipped by an
	 * out-of-range iq_producer) and of answers not delivered in full
	 * (frame, sense buffer or reply queue not writable, a reply context
	 * not below the command count, a reply dropped)
	 */
	__u32 errors;
	/*
	 * kernel: non-zero while the adapter's worker reads the inbound queue
	 * and will read iq_producer again before it waits for a kick.  An
	 * initiator that stores iq_producer, then a full memory barrier, then
	 * reads non-zero here may leave out the kick: the entry is read
	 * without it.  Zero (always, on a module without it) means kick.
	 */
	__u32 iq_no_kick;
	__u32 reserved[56];
	/*
	 * At offset 256: the inbound queue, each entry a frame address encoded
	 * as for the hardware's inbound queue port:
	 *   address | (extra_frames << 1) | 1
	 * with the address 64-byte aligned and 0 <= extra_frames <= 7.
	 */
	__u64 iq[TCM_MEGASAS_IQ_ENTRIES];
};

#define TCM_MEGASAS_REGS_SIZE		12288

#define TCM_MEGASAS_IOC	0xAF	/* shared with the vhost ioctls */
#define TCM_MEGASAS_GET_ABI_VERSION	_IOR(TCM_MEGASAS_IOC, 0xA0, __u32)
#define TCM_MEGASAS_SET_ENDPOINT	_IOW(TCM_MEGASAS_IOC, 0xA1, struct tcm_megasas_endpoint)
#define TCM_MEGASAS_CLEAR_ENDPOINT	_IOW(TCM_MEGASAS_IOC, 0xA2, struct tcm_megasas_endpoint)
#define TCM_MEGASAS_DOORBELL		_IO(TCM_MEGASAS_IOC, 0xA3)
#define TCM_MEGASAS_RESET		_IO(TCM_MEGASAS_IOC, 0xA4)

#endif /* _UAPI_LINUX_TCM_MEGASAS_H */
