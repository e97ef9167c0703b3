/* SPDX-License-Identifier: GPL-2.0 */
/*
 * C helpers linked into tcm_virt.ko: wrappers for static inline functions
 * and macros, module parameters (strings and writable ones, which Rust
 * module! parameters are not), the SCSI device behind a pscsi backstore,
 * and a layout probe that lets the Rust side compare its bindgen view of C
 * structs with the C compiler's.
 */
#ifndef TCM_VIRT_HELPERS_H
#define TCM_VIRT_HELPERS_H

#include <linux/types.h>

struct config_item;
struct se_portal_group;
struct new_utsname;

/* sizeof/offsetof as the C compiler sees them */
struct tcm_virt_layout {
	u64 se_cmd;
	u64 se_session;
	u64 se_portal_group;
	u64 se_wwn;
	u64 se_lun;
	u64 target_core_fabric_ops;
	u64 configfs_attribute;
	u64 vhost_dev;
	u64 vhost_virtqueue;
	u64 off_se_cmd_tag;
	u64 off_se_tpg_tpg_group;
	u64 off_fabric_ops_tfc_wwn_attrs;
	u64 off_fabric_ops_default_submit_type;
	u64 iov_iter;
	u64 off_iov_iter_iov_offset;
	u64 off_iov_iter_count;
	u64 off_iov_iter_nr_segs;
};

void tcm_virt_get_layout(struct tcm_virt_layout *l);

/* string module parameters (Rust module! params are integers only) */
const char *tcm_virt_param_fabric_name(void);
const char *tcm_virt_param_vhost_devname(void);

/* static inlines of include/target/target_core_base.h */
struct se_portal_group *tcm_virt_to_tpg(struct config_item *item);
struct se_portal_group *tcm_virt_attrib_to_tpg(struct config_item *item);

/* static inline of include/linux/utsname.h */
const struct new_utsname *tcm_virt_init_utsname(void);

/* bitfields of struct target_core_fabric_ops */
struct target_core_fabric_ops;
void tcm_virt_fabric_ops_set_direct(struct target_core_fabric_ops *ops,
				    bool compl, bool submit);

struct page;
struct scatterlist;
struct iov_iter;
struct vhost_virtqueue;

unsigned int tcm_virt_param_max_io_vqs(void);
unsigned int tcm_virt_param_answer_batch(void);

void tcm_virt_put_page(struct page *page);
int tcm_virt_put_user_le32(unsigned long uva, u32 v);
int tcm_virt_put_user_le64(unsigned long uva, u64 v);
int tcm_virt_put_mfi_status(unsigned long uva, u8 sense_len, u8 scsi_status,
			    u8 cmd_status);
struct page *tcm_virt_sg_page(struct scatterlist *sg);
void tcm_virt_sg_set_page(struct scatterlist *sg, struct page *page,
			  unsigned int len, unsigned int offset);

void tcm_virt_vq_err(struct vhost_virtqueue *vq);
bool tcm_virt_vq_is_le(struct vhost_virtqueue *vq);
bool tcm_virt_vq_has_feature(struct vhost_virtqueue *vq, int bit);
unsigned int tcm_virt_vq_poll_us(struct vhost_virtqueue *vq);
u64 tcm_virt_poll_deadline(unsigned int us);
bool tcm_virt_can_busy_poll(struct vhost_virtqueue *vq, u64 deadline);
u64 tcm_virt_vq_features(struct vhost_virtqueue *vq);
void tcm_virt_vq_set_features(struct vhost_virtqueue *vq, u64 features);

void tcm_virt_wait_zero(u32 *var);

struct work_struct;
struct se_cmd;

/*
 * The offload_kib parameter, read by Rust with a volatile load (READ_ONCE)
 * for every command: a variable rather than a helper spares a call per
 * command.
 */
extern unsigned int tcm_virt_offload_kib;
int tcm_virt_offload_wq_init(void);
void tcm_virt_offload_wq_exit(void);
void tcm_virt_offload_queue(struct work_struct *work,
			    void (*fn)(struct work_struct *));
void tcm_virt_offload_flush(void);
void tcm_virt_cmd_get(struct se_cmd *cmd);

/* megasas front end */
const char *tcm_virt_param_megasas_devname(void);

struct vm_area_struct;

void *tcm_virt_regs_alloc(unsigned long size);
void tcm_virt_regs_free(void *regs);
int tcm_virt_regs_mmap(struct vm_area_struct *vma, void *regs, unsigned long size);

/* signals the call eventfd of a virtqueue used as a plain worker */
void tcm_virt_vq_call(struct vhost_virtqueue *vq);

/* a LUN of a TPG, as the megasas front end reports it */
struct tcm_virt_lun_info {
	u64 lun;
	u64 blocks;		/* logical blocks */
	u32 block_size;
	u8 dev_type;		/* SCSI peripheral device type */
};

int tcm_virt_tpg_luns(struct se_portal_group *tpg, struct tcm_virt_lun_info *out,
		      int max);
int tcm_virt_tpg_lun(struct se_portal_group *tpg, u64 lun,
		     struct tcm_virt_lun_info *out);
int tcm_virt_tpg_lun_block_size(struct se_portal_group *tpg, u64 lun,
				u32 *bs);

/* pass-through (pscsi) LUNs: Block Limits VPD */
struct se_lun;
struct se_device;

struct tcm_virt_pt_limits {
	u32 host_sectors;	/* the device queue's max_sectors (512 bytes) */
	u32 block_size;		/* the backstore's logical block size */
	u32 optimal_blocks;	/* the backstore's optimal_sectors */
	u8 dev_type;		/* SCSI peripheral device type */
};

bool tcm_virt_param_emulate_block_limits(void);
int tcm_virt_lun_pt_vpd(struct se_lun *lun, u8 page, u8 *out, int len);
int tcm_virt_pt_get_limits(struct se_device *dev, struct tcm_virt_pt_limits *out);

#endif /* TCM_VIRT_HELPERS_H */
