// SPDX-License-Identifier: GPL-2.0
/*
 * C helpers of tcm_virt.ko: what the Rust side cannot reach by itself.
 */
#include <linux/module.h>
#include <linux/moduleparam.h>
#include <linux/stddef.h>
#include <linux/utsname.h>
#include <target/target_core_base.h>
#include <target/target_core_fabric.h>
#include <target/target_core_backend.h>
#include <linux/anon_inodes.h>
#include <linux/eventfd.h>
#include <linux/fs.h>
#include <linux/mm.h>
#include <linux/sched/clock.h>
#include <linux/sched/signal.h>
#include <linux/scatterlist.h>
#include <linux/uaccess.h>
#include <linux/uio.h>
#include <linux/vmalloc.h>
#include <linux/wait_bit.h>
#include <linux/workqueue.h>
#include <linux/blkdev.h>
#include <scsi/scsi_device.h>
#include "vhost.h"
#include "target_core_pscsi.h"	/* drivers/target/target_core_pscsi.h */
#include "tcm_virt_helpers.h"

static char *fabric_name = "vhost";
module_param(fabric_name, charp, 0444);
MODULE_PARM_DESC(fabric_name,
		 "LIO fabric name, the directory under /sys/kernel/config/target (default: vhost)");

static char *vhost_devname = "vhost-scsi";
module_param(vhost_devname, charp, 0444);
MODULE_PARM_DESC(vhost_devname,
		 "name of the vhost misc device under /dev (default: vhost-scsi)");

static unsigned int max_io_vqs = 128;
module_param(max_io_vqs, uint, 0644);
MODULE_PARM_DESC(max_io_vqs,
		 "I/O virtqueues allocated per open of the vhost device, 1 to 1024 (default: 128)");

/*
 * Busy polling of a request queue's ring before its notification is
 * re-enabled (what vhost_net does with VHOST_SET_VRING_BUSYLOOP_TIMEOUT).
 * A ring's own timeout, when its owner set one, wins over this default;
 * both are capped so that a poll never holds the ring's mutex for long.
 */
#define TCM_VIRT_POLL_MAX_US 1000U
static unsigned int poll_us;
module_param(poll_us, uint, 0644);
MODULE_PARM_DESC(poll_us,
		 "microseconds a request queue's worker polls its ring for new requests before it waits for a kick, for rings whose owner set no VHOST_SET_VRING_BUSYLOOP_TIMEOUT; at most 1000 (default: 0, no polling)");

/*
 * A worker that runs commands to completion in its pass answers them every
 * answer_batch commands instead of only at the end of the pass, so that the
 * initiator can reap and send more while the worker goes on.
 */
static unsigned int answer_batch = 16;
module_param(answer_batch, uint, 0644);
MODULE_PARM_DESC(answer_batch,
		 "commands a queue's worker runs to completion in one pass before it answers them and signals the initiator; 0: only at the end of the pass (default: 16)");

/*
 * A command of at least offload_kib KiB, on a device whose submit_type is
 * the fabric's default, is handed to target core from an unbound workqueue
 * instead of on its queue's worker: its execution (rd_mcp's or fileio's
 * copy of the data) runs on whichever CPU is free while the worker goes
 * on with its queues.  Smaller commands still run to completion.
 */
unsigned int tcm_virt_offload_kib = 128;
module_param_named(offload_kib, tcm_virt_offload_kib, uint, 0644);
MODULE_PARM_DESC(offload_kib,
		 "commands of at least this many KiB, on devices whose submit_type is the fabric's default, are submitted from an unbound workqueue instead of the queue's worker; 0: never (default: 128)");

/*
 * The module's own workqueue for those submissions: destroying it at module
 * exit waits for a work function still returning after it let go of its
 * command.
 */
static struct workqueue_struct *offload_wq;

int tcm_virt_offload_wq_init(void)
{
	offload_wq = alloc_workqueue("tcm_virt_offload",
				     WQ_UNBOUND | WQ_MEM_RECLAIM | WQ_SYSFS, 0);
	return offload_wq ? 0 : -ENOMEM;
}

void tcm_virt_offload_wq_exit(void)
{
	destroy_workqueue(offload_wq);
}

/*
 * Initialises an idle work and queues it on the offload workqueue, in the
 * pod (affinity_scope) of the next online CPU after this one: a pod of
 * the default scope can be this CPU alone (a cache shard of a small
 * machine), where the copy would wait for the worker it is meant to run
 * beside.  Within a pod of several CPUs the workqueue starts the work on
 * an idle one.
 */
void tcm_virt_offload_queue(struct work_struct *work,
			    void (*fn)(struct work_struct *))
{
	int cpu = cpumask_next_wrap(raw_smp_processor_id(), cpu_online_mask);

	INIT_WORK(work, fn);
	queue_work_on(cpu < nr_cpu_ids ? cpu : WORK_CPU_UNBOUND, offload_wq, work);
}

/* Waits until every work queued on the offload workqueue so far has run. */
void tcm_virt_offload_flush(void)
{
	flush_workqueue(offload_wq);
}

/* Takes a reference on a command, dropped with target_put_sess_cmd(). */
void tcm_virt_cmd_get(struct se_cmd *cmd)
{
	kref_get(&cmd->cmd_kref);
}

static char *megasas_devname = "tcm-megasas";
module_param(megasas_devname, charp, 0444);
MODULE_PARM_DESC(megasas_devname,
		 "name of the megasas misc device under /dev (default: tcm-megasas)");

static bool emulate_block_limits = true;
module_param(emulate_block_limits, bool, 0644);
MODULE_PARM_DESC(emulate_block_limits,
		 "Block Limits VPD for pass-through (pscsi) LUNs, decided when a LUN is linked: emulated where the device lacks it, MAXIMUM TRANSFER LENGTH clamped to the host queue's max_sectors where it has it (default: Y)");

bool tcm_virt_param_emulate_block_limits(void)
{
	return READ_ONCE(emulate_block_limits);
}

/*
 * The SCSI device behind a pass-through (pscsi) backstore, or NULL for any
 * other backstore.  pscsi keeps it in its private struct; the module is
 * built against the kernel's own source tree, whose layout this is.
 */
static struct scsi_device *pt_sdev(struct se_device *dev)
{
	if (!dev || strcmp(dev->transport->name, "pscsi"))
		return NULL;
	return container_of(dev, struct pscsi_dev_virt, dev)->pdv_sd;
}

int tcm_virt_lun_pt_vpd(struct se_lun *lun, u8 page, u8 *out, int len)
{
	/* Called from fabric_post_link: the link holds the device. */
	struct se_device *dev = rcu_dereference_protected(lun->lun_se_dev, true);
	struct scsi_device *sd = pt_sdev(dev);
	u8 *buf;
	int ret;

	if (!sd)
		return -ENODEV;
	buf = kzalloc(len, GFP_KERNEL);
	if (!buf)
		return -ENOMEM;
	ret = scsi_get_vpd_page(sd, page, buf, len);
	if (!ret)
		memcpy(out, buf, len);
	kfree(buf);
	return ret;
}

int tcm_virt_pt_get_limits(struct se_device *dev, struct tcm_virt_pt_limits *out)
{
	struct scsi_device *sd = pt_sdev(dev);

	if (!sd)
		return -ENODEV;
	out->host_sectors = queue_max_sectors(sd->request_queue);
	out->block_size = dev->dev_attrib.block_size;
	out->optimal_blocks = dev->dev_attrib.optimal_sectors;
	out->dev_type = dev->transport->get_device_type(dev);
	return 0;
}

const char *tcm_virt_param_megasas_devname(void)
{
	return megasas_devname ? megasas_devname : "";
}

void *tcm_virt_regs_alloc(unsigned long size)
{
	return vmalloc_user(size);
}

void tcm_virt_regs_free(void *regs)
{
	vfree(regs);
}

/*
 * A mapping of the register page holds a file of its own, not the
 * adapter's: one holding the adapter's file would keep the adapter alive,
 * and through vhost core's reference the owner's mm, which holds the
 * mapping, for ever once the owner dies with the page still mapped (the
 * adapter would never be released and its TPG never unbound).  The pages
 * are vmalloc_user's; the mapping takes a reference on each
 * (remap_vmalloc_range), so they outlive the adapter's vfree.  The file's
 * operations (owner: this module) pin the module while a mapping exists.
 */
static const struct file_operations tcm_virt_regs_fops = {
	.owner = THIS_MODULE,
};

int tcm_virt_regs_mmap(struct vm_area_struct *vma, void *regs, unsigned long size)
{
	struct file *f;
	int r;

	if (vma->vm_pgoff != 0 || vma->vm_end - vma->vm_start > size)
		return -EINVAL;
	f = anon_inode_create_getfile("[tcm-megasas-regs]", &tcm_virt_regs_fops, NULL,
				      O_RDWR, NULL);
	if (IS_ERR(f))
		return PTR_ERR(f);
	r = remap_vmalloc_range(vma, regs, 0);
	if (!r)
		vma_set_file(vma, f);
	fput(f);
	return r;
}

void tcm_virt_vq_call(struct vhost_virtqueue *vq)
{
	if (vq->call_ctx.ctx)
		eventfd_signal(vq->call_ctx.ctx);
}

static void lun_info(struct se_lun *lun, struct se_device *dev,
		     struct tcm_virt_lun_info *out)
{
	out->lun = lun->unpacked_lun;
	out->block_size = dev->dev_attrib.block_size;
	out->blocks = dev->transport->get_blocks ?
		dev->transport->get_blocks(dev) + 1 : 0;
	out->dev_type = dev->transport->get_device_type ?
		dev->transport->get_device_type(dev) : 0;
}

int tcm_virt_tpg_luns(struct se_portal_group *tpg, struct tcm_virt_lun_info *out,
		      int max)
{
	struct se_device *dev;
	struct se_lun *lun;
	int n = 0;

	rcu_read_lock();
	hlist_for_each_entry_rcu(lun, &tpg->tpg_lun_hlist, link) {
		dev = rcu_dereference(lun->lun_se_dev);
		if (!dev || n >= max)
			continue;
		lun_info(lun, dev, &out[n++]);
	}
	rcu_read_unlock();
	return n;
}

/* LUN @unpacked of @tpg and its device, or NULL; under rcu_read_lock(). */
static struct se_device *tpg_lun_dev(struct se_portal_group *tpg,
				     u64 unpacked, struct se_lun **out)
{
	struct se_lun *lun;

	hlist_for_each_entry_rcu(lun, &tpg->tpg_lun_hlist, link) {
		if (lun->unpacked_lun != unpacked)
			continue;
		*out = lun;
		return rcu_dereference(lun->lun_se_dev);
	}
	return NULL;
}

int tcm_virt_tpg_lun(struct se_portal_group *tpg, u64 unpacked,
		     struct tcm_virt_lun_info *out)
{
	struct se_device *dev;
	struct se_lun *lun;
	int ret = -ENODEV;

	rcu_read_lock();
	dev = tpg_lun_dev(tpg, unpacked, &lun);
	if (dev) {
		lun_info(lun, dev, out);
		ret = 0;
	}
	rcu_read_unlock();
	return ret;
}

/*
 * The logical block size of LUN @unpacked of @tpg into @bs (which can be
 * 0: a pass-through tape in variable block mode); -ENODEV without the LUN
 * or its device.  The megasas adapter's lookup for each I/O frame, which
 * needs neither the capacity nor the device type (two backend calls in
 * lun_info()).
 */
int tcm_virt_tpg_lun_block_size(struct se_portal_group *tpg, u64 unpacked,
				u32 *bs)
{
	struct se_device *dev;
	struct se_lun *lun;
	int ret = -ENODEV;

	rcu_read_lock();
	dev = tpg_lun_dev(tpg, unpacked, &lun);
	if (dev) {
		*bs = dev->dev_attrib.block_size;
		ret = 0;
	}
	rcu_read_unlock();
	return ret;
}

unsigned int tcm_virt_vq_poll_us(struct vhost_virtqueue *vq)
{
	unsigned int us = READ_ONCE(vq->busyloop_timeout);

	if (!us)
		us = READ_ONCE(poll_us);
	return min(us, TCM_VIRT_POLL_MAX_US);
}

u64 tcm_virt_poll_deadline(unsigned int us)
{
	return local_clock() + (u64)us * NSEC_PER_USEC;
}

/*
 * Whether a busy poll of @vq may go on until @deadline: not when the
 * worker should give up its CPU, has a signal, or has other work queued
 * (a completion, a flush, another ring's kick).
 */
bool tcm_virt_can_busy_poll(struct vhost_virtqueue *vq, u64 deadline)
{
	if (need_resched() || signal_pending(current) ||
	    local_clock() > deadline || vhost_vq_has_work(vq))
		return false;
	cpu_relax();
	return true;
}

unsigned int tcm_virt_param_max_io_vqs(void)
{
	return clamp(READ_ONCE(max_io_vqs), 1U, 1024U);
}

unsigned int tcm_virt_param_answer_batch(void)
{
	return READ_ONCE(answer_batch);
}

const char *tcm_virt_param_fabric_name(void)
{
	return fabric_name ? fabric_name : "";
}

const char *tcm_virt_param_vhost_devname(void)
{
	return vhost_devname ? vhost_devname : "";
}

void tcm_virt_get_layout(struct tcm_virt_layout *l)
{
	l->se_cmd = sizeof(struct se_cmd);
	l->se_session = sizeof(struct se_session);
	l->se_portal_group = sizeof(struct se_portal_group);
	l->se_wwn = sizeof(struct se_wwn);
	l->se_lun = sizeof(struct se_lun);
	l->target_core_fabric_ops = sizeof(struct target_core_fabric_ops);
	l->configfs_attribute = sizeof(struct configfs_attribute);
	l->vhost_dev = sizeof(struct vhost_dev);
	l->vhost_virtqueue = sizeof(struct vhost_virtqueue);
	l->off_se_cmd_tag = offsetof(struct se_cmd, tag);
	l->off_se_tpg_tpg_group = offsetof(struct se_portal_group, tpg_group);
	l->off_fabric_ops_tfc_wwn_attrs =
		offsetof(struct target_core_fabric_ops, tfc_wwn_attrs);
	l->off_fabric_ops_default_submit_type =
		offsetof(struct target_core_fabric_ops, default_submit_type);
	l->iov_iter = sizeof(struct iov_iter);
	l->off_iov_iter_iov_offset = offsetof(struct iov_iter, iov_offset);
	l->off_iov_iter_count = offsetof(struct iov_iter, count);
	l->off_iov_iter_nr_segs = offsetof(struct iov_iter, nr_segs);
}

struct se_portal_group *tcm_virt_to_tpg(struct config_item *item)
{
	return to_tpg(item);
}

struct se_portal_group *tcm_virt_attrib_to_tpg(struct config_item *item)
{
	return attrib_to_tpg(item);
}

const struct new_utsname *tcm_virt_init_utsname(void)
{
	return init_utsname();
}

void tcm_virt_fabric_ops_set_direct(struct target_core_fabric_ops *ops,
				    bool compl, bool submit)
{
	ops->direct_compl_supp = compl;
	ops->direct_submit_supp = submit;
}

void tcm_virt_put_page(struct page *page)
{
	put_page(page);
}

/*
 * put_user() of one little-endian value (a macro): the megasas adapter's
 * per-command writes of reply entries and its producer index, one access
 * each.  0 or -EFAULT.
 */
int tcm_virt_put_user_le32(unsigned long uva, u32 v)
{
	return put_user((__force u32)cpu_to_le32(v), (u32 __user *)uva);
}

int tcm_virt_put_user_le64(unsigned long uva, u64 v)
{
	return put_user((__force u64)cpu_to_le64(v), (u64 __user *)uva);
}

/*
 * The status bytes of an MFI frame header, @uva being the address of its
 * sense_len byte: sense_len (@uva), scsi_status (@uva + 2), a write
 * barrier, then cmd_status (@uva + 1), which polling initiators wait for.
 * One user-access scope where three put_user() calls each open and close
 * their own.  0 or -EFAULT: an address that is not a user address is
 * refused or made to fault (masked user access), never written.
 */
int tcm_virt_put_mfi_status(unsigned long uva, u8 sense_len, u8 scsi_status,
			    u8 cmd_status)
{
	u8 __user *p = (u8 __user *)uva;

	scoped_user_write_access_size(p, 3, efault) {
		unsafe_put_user(sense_len, p, efault);
		unsafe_put_user(scsi_status, p + 2, efault);
		smp_wmb();
		unsafe_put_user(cmd_status, p + 1, efault);
	}
	return 0;
efault:
	return -EFAULT;
}

struct page *tcm_virt_sg_page(struct scatterlist *sg)
{
	return sg_page(sg);
}

void tcm_virt_sg_set_page(struct scatterlist *sg, struct page *page,
			  unsigned int len, unsigned int offset)
{
	sg_set_page(sg, page, len, offset);
}

/* vq_err() without its message: signal the ring's error eventfd. */
void tcm_virt_vq_err(struct vhost_virtqueue *vq)
{
	if (vq->error_ctx)
		eventfd_signal(vq->error_ctx);
}

bool tcm_virt_vq_is_le(struct vhost_virtqueue *vq)
{
	return vhost_is_little_endian(vq);
}

bool tcm_virt_vq_has_feature(struct vhost_virtqueue *vq, int bit)
{
	return vhost_has_feature(vq, bit);
}

u64 tcm_virt_vq_features(struct vhost_virtqueue *vq)
{
	return vq->acked_features;
}

void tcm_virt_vq_set_features(struct vhost_virtqueue *vq, u64 features)
{
	vq->acked_features = features;
}

/* Sleep until *var is 0; the side that zeroes it calls wake_up_var(var). */
void tcm_virt_wait_zero(u32 *var)
{
	wait_var_event(var, READ_ONCE(*var) == 0);
}
