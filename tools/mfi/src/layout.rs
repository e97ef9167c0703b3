// SPDX-License-Identifier: GPL-2.0
//! The MFI layouts of the Linux driver (`megaraid_sas.h`, through bindgen
//! in `build.rs`) against the offsets this tool and tcm_virt's wire code
//! use.  Every check is a compile-time assertion.

#[allow(
    dead_code,
    non_camel_case_types,
    non_snake_case,
    non_upper_case_globals,
    clippy::all
)]
mod linux {
    include!(concat!(env!("OUT_DIR"), "/megaraid_sas.rs"));
}

use core::mem::{offset_of, size_of};
use linux::*;
use tcm_virt_wire::mfi::{self as w, off};

macro_rules! same {
    ($a:expr, $b:expr) => {
        const _: () = assert!($a == $b);
    };
}

same!(size_of::<megasas_header>(), 24);
same!(offset_of!(megasas_header, cmd), off::CMD);
same!(offset_of!(megasas_header, sense_len), off::SENSE_LEN);
same!(offset_of!(megasas_header, cmd_status), off::CMD_STATUS);
same!(offset_of!(megasas_header, scsi_status), off::SCSI_STATUS);
same!(offset_of!(megasas_header, target_id), off::TARGET_ID);
same!(offset_of!(megasas_header, lun), off::LUN);
same!(offset_of!(megasas_header, cdb_len), off::CDB_LEN);
same!(offset_of!(megasas_header, sge_count), off::SGE_COUNT);
same!(offset_of!(megasas_header, context), off::CONTEXT);
same!(offset_of!(megasas_header, flags), off::FLAGS);
same!(offset_of!(megasas_header, timeout), off::TIMEOUT);
same!(offset_of!(megasas_header, data_xferlen), off::DATA_XFER_LEN);
same!(size_of::<megasas_init_frame>(), w::FRAME_SIZE);
same!(
    offset_of!(megasas_init_frame, queue_info_new_phys_addr_lo),
    off::INIT_QINFO
);
same!(size_of::<megasas_init_queue_info>(), w::QINFO_SIZE);
same!(offset_of!(megasas_init_queue_info, reply_queue_entries), 4);
same!(
    offset_of!(megasas_init_queue_info, reply_queue_start_phys_addr_lo),
    8
);
same!(
    offset_of!(megasas_init_queue_info, producer_index_phys_addr_lo),
    16
);
same!(
    offset_of!(megasas_init_queue_info, consumer_index_phys_addr_lo),
    24
);
same!(
    offset_of!(megasas_io_frame, sense_buf_phys_addr_lo),
    off::SENSE_ADDR
);
same!(offset_of!(megasas_io_frame, start_lba_lo), off::START_LBA);
same!(offset_of!(megasas_io_frame, sgl), off::IO_SGL);
same!(
    offset_of!(megasas_pthru_frame, sense_buf_phys_addr_lo),
    off::SENSE_ADDR
);
same!(offset_of!(megasas_pthru_frame, cdb), off::PTHRU_CDB);
same!(offset_of!(megasas_pthru_frame, sgl), off::PTHRU_SGL);
same!(offset_of!(megasas_dcmd_frame, opcode), off::DCMD_OPCODE);
same!(offset_of!(megasas_dcmd_frame, mbox), off::DCMD_MBOX);
same!(offset_of!(megasas_dcmd_frame, sgl), off::DCMD_SGL);
same!(
    offset_of!(megasas_abort_frame, abort_context),
    off::ABORT_CONTEXT
);
same!(
    offset_of!(megasas_abort_frame, abort_mfi_phys_addr_lo),
    off::ABORT_ADDR
);
same!(size_of::<megasas_sge32>(), w::SgeFormat::Sge32.size());
same!(size_of::<megasas_sge64>(), w::SgeFormat::Sge64.size());
same!(size_of::<megasas_sge_skinny>(), w::SgeFormat::Skinny.size());
same!(size_of::<megasas_ctrl_info>(), w::CTRL_INFO_SIZE);
same!(offset_of!(megasas_ctrl_info, max_lds), 1343);
same!(offset_of!(megasas_ctrl_info, product_name), 1344);
same!(offset_of!(megasas_ctrl_info, serial_no), 1424);
same!(offset_of!(megasas_ctrl_info, max_concurrent_cmds), 1464);
same!(offset_of!(megasas_ctrl_info, max_sge_count), 1466);
same!(offset_of!(megasas_ctrl_info, max_request_size), 1468);
same!(offset_of!(megasas_ctrl_info, ld_present_count), 1472);
same!(offset_of!(megasas_ctrl_info, pd_present_count), 1478);
same!(offset_of!(megasas_ctrl_info, max_strips_per_io), 1498);
same!(offset_of!(megasas_ctrl_info, stripe_sz_ops), 1512);
same!(offset_of!(megasas_ctrl_info, properties), 1536);
same!(offset_of!(megasas_ctrl_info, adapterOperations3), 2024);
same!(offset_of!(megasas_ctrl_info, adapter_operations4), 2044);
same!(size_of::<megasas_ctrl_prop>(), w::CTRL_PROP_SIZE);
same!(size_of::<megasas_evt_log_info>(), w::EVT_LOG_INFO_SIZE);
same!(size_of::<megasas_evt_detail>(), w::EVT_DETAIL_SIZE);
same!(offset_of!(megasas_evt_detail, code), 8);
same!(offset_of!(megasas_evt_detail, cl), 12);
same!(offset_of!(megasas_evt_detail, arg_type), 16);
same!(offset_of!(megasas_evt_detail, description), 128);
same!(size_of::<MR_PD_INFO>(), w::PD_INFO_SIZE);
same!(offset_of!(MR_PD_INFO, scsiDevType), 165);
same!(offset_of!(MR_PD_INFO, fwState), 184);
same!(offset_of!(MR_PD_INFO, rawSize), 232);
same!(offset_of!(MR_PD_INFO, enclDeviceId), 256);
same!(size_of::<MR_PD_ADDRESS>(), w::PD_ADDRESS_SIZE);
same!(offset_of!(MR_PD_ADDRESS, scsiDevType), 6);
same!(offset_of!(MR_PD_ADDRESS, sasAddr), 8);
same!(offset_of!(MR_PD_LIST, addr), w::PD_LIST_HDR);
same!(size_of::<MR_LD_LIST>(), w::LD_LIST_SIZE);
same!(size_of::<MR_LD_TARGETID_LIST>(), w::LD_TARGETID_LIST_SIZE);
same!(offset_of!(MR_LD_TARGETID_LIST, targetId), 11);
