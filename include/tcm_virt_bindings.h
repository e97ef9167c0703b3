/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The only input to bindgen for tcm_virt: the subsystem headers the kernel
 * crate does not bind, and the prototypes of the module's C helpers.
 */
#include <linux/module.h>
#include <linux/utsname.h>
#include <target/target_core_base.h>
#include <target/target_core_fabric.h>
#include <target/target_core_backend.h>
#include <scsi/scsi_proto.h>
#include <uapi/linux/virtio_scsi.h>
#include <uapi/linux/vhost.h>
#include "vhost.h"		/* drivers/vhost/vhost.h */
#include "tcm_virt_helpers.h"
