/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The only input to bindgen for tcm_virt: the subsystem headers the kernel
 * crate does not bind, the module's own uAPI, and the prototypes of the
 * module's C helpers.
 */
#include <linux/module.h>
#include <linux/utsname.h>
#include <linux/sched/stat.h>	/* single_task_running() */
#include <target/target_core_base.h>
#include <target/target_core_fabric.h>
#include <target/target_core_backend.h>
#include <scsi/scsi_proto.h>
#include <uapi/linux/virtio_scsi.h>
#include <uapi/linux/vhost.h>
#include "vhost.h"		/* drivers/vhost/vhost.h */
#include "tcm_virt_helpers.h"
#include "tcm_virt_trace.h"
#include "uapi/linux/tcm_megasas.h"	/* include/uapi/linux/ */

/*
 * The megasas ioctl numbers as constants: bindgen does not expand
 * function-like macros (_IOR and friends), but it does evaluate these.
 */
static const unsigned int TCM_VIRT_MEGASAS_GET_ABI_VERSION = TCM_MEGASAS_GET_ABI_VERSION;
static const unsigned int TCM_VIRT_MEGASAS_SET_ENDPOINT = TCM_MEGASAS_SET_ENDPOINT;
static const unsigned int TCM_VIRT_MEGASAS_CLEAR_ENDPOINT = TCM_MEGASAS_CLEAR_ENDPOINT;
static const unsigned int TCM_VIRT_MEGASAS_DOORBELL = TCM_MEGASAS_DOORBELL;
static const unsigned int TCM_VIRT_MEGASAS_RESET = TCM_MEGASAS_RESET;
