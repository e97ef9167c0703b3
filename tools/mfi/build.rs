// SPDX-License-Identifier: GPL-2.0
//! Generates Rust layouts of the MFI structures from the kernel's own
//! `drivers/scsi/megaraid/megaraid_sas.h` with bindgen (whose layout tests
//! are compile-time assertions), so that `src/layout.rs` can check the
//! tool's frame offsets against the Linux driver's, not against the module;
//! and the adapter's uAPI (ioctl numbers, endpoint, register page) from the
//! project's `include/uapi/linux/tcm_megasas.h`, the header the module's
//! bindings come from too.
//!
//! The kernel source is the one `make deps` / `scripts/kernel.sh` unpack
//! (`$TCM_VIRT_CACHE/src/linux-source-7.3`), or `$TCM_VIRT_KSRC`.

use std::env;
use std::fs;
use std::path::PathBuf;
use std::process::Command;

const SHIM: &str = "\
#include <stdint.h>
typedef uint8_t u8; typedef uint16_t u16; typedef uint32_t u32; typedef uint64_t u64;
typedef int8_t s8; typedef int16_t s16; typedef int32_t s32;
typedef uint16_t __le16; typedef uint32_t __le32; typedef uint64_t __le64;
typedef uint16_t __be16; typedef uint32_t __be32; typedef uint64_t __be64;
typedef uint64_t dma_addr_t;
#define __packed __attribute__((packed))
#define __aligned(x) __attribute__((aligned(x)))
#define BIT(n) (1UL << (n))
#define MAX_LOGICAL_DRIVES_EXT 256
#define __counted_by_le(x)
#define __counted_by(x)
#define DECLARE_FLEX_ARRAY(T, n) struct { struct { } __empty_##n; T n[]; }
struct megasas_instance;
";

fn main() {
    let home = env::var("HOME").unwrap_or_default();
    let cache = env::var("TCM_VIRT_CACHE").unwrap_or_else(|_| {
        env::var("XDG_CACHE_HOME").unwrap_or_else(|_| format!("{home}/.cache")) + "/tcm_virt"
    });
    let ksrc =
        env::var("TCM_VIRT_KSRC").unwrap_or_else(|_| format!("{cache}/src/linux-source-7.3"));
    let hdr = PathBuf::from(&ksrc).join("drivers/scsi/megaraid/megaraid_sas.h");
    println!("cargo:rerun-if-changed={}", hdr.display());
    println!("cargo:rerun-if-env-changed=TCM_VIRT_KSRC");
    println!("cargo:rerun-if-changed=build.rs");
    let text = fs::read_to_string(&hdr).unwrap_or_else(|e| {
        panic!(
            "{}: {e}: run 'make deps' (or set TCM_VIRT_KSRC to a kernel tree)",
            hdr.display()
        )
    });
    // The wire structures: from after the includes to the driver-private
    // part, plus the event structures.
    let lines: Vec<&str> = text.lines().collect();
    let find = |p: &str| {
        lines
            .iter()
            .position(|l| l.starts_with(p))
            .unwrap_or_else(|| panic!("megaraid_sas.h: '{p}' not found"))
    };
    let a = find("#include <scsi/scsi_cmnd.h>") + 1;
    let b = find("struct MR_PRIV_DEVICE");
    let c = find("union megasas_evt_class_locale");
    let d = find("struct megasas_aen_event");
    let mut out = String::from(SHIM);
    for l in lines[a..b].iter().chain(&lines[c..d]) {
        out.push_str(l);
        out.push('\n');
    }
    let dir = PathBuf::from(env::var("OUT_DIR").unwrap());
    let h = dir.join("megaraid_sas_wire.h");
    fs::write(&h, out).unwrap();
    let bindgen = env::var("BINDGEN").unwrap_or_else(|_| {
        let p = format!("{home}/.cargo/bin/bindgen");
        if fs::metadata(&p).is_ok() {
            p
        } else {
            "bindgen".into()
        }
    });
    let mut cmd = Command::new(&bindgen);
    if env::var_os("LIBCLANG_PATH").is_none() {
        cmd.env("LIBCLANG_PATH", "/usr/lib/llvm-19/lib");
    }
    let st = cmd
        .arg(&h)
        .args(["--use-core", "--no-doc-comments", "--allowlist-type"])
        .arg(
            "megasas_(header|io_frame|pthru_frame|dcmd_frame|abort_frame|init_frame|\
             init_queue_info|sge32|sge64|sge_skinny|ctrl_info|ctrl_prop|evt_detail|\
             evt_log_info)|MR_(PD_INFO|PD_LIST|PD_ADDRESS|LD_LIST|LD_TARGETID_LIST)",
        )
        .arg("-o")
        .arg(dir.join("megaraid_sas.rs"))
        .args(["--", "-w"])
        .status()
        .unwrap_or_else(|e| panic!("{bindgen}: {e}: run 'make deps'"));
    assert!(st.success(), "bindgen failed on {}", h.display());
    uapi(&bindgen, &dir);
}

/// `$OUT_DIR/tcm_megasas.rs` from `include/uapi/linux/tcm_megasas.h` (the
/// ioctl numbers through constants: bindgen does not expand `_IOR` and
/// friends, but evaluates a constant's initialiser).
fn uapi(bindgen: &str, dir: &std::path::Path) {
    let hdr = PathBuf::from(env::var("CARGO_MANIFEST_DIR").unwrap())
        .join("../../include/uapi/linux/tcm_megasas.h");
    println!("cargo:rerun-if-changed={}", hdr.display());
    let mut w = format!("#include \"{}\"\n", hdr.display());
    for n in [
        "GET_ABI_VERSION",
        "SET_ENDPOINT",
        "CLEAR_ENDPOINT",
        "DOORBELL",
        "RESET",
    ] {
        w.push_str(&format!(
            "static const unsigned int TCM_VIRT_MEGASAS_{n} = TCM_MEGASAS_{n};\n"
        ));
    }
    let h = dir.join("tcm_megasas_uapi.h");
    fs::write(&h, w).unwrap();
    let mut cmd = Command::new(bindgen);
    if env::var_os("LIBCLANG_PATH").is_none() {
        cmd.env("LIBCLANG_PATH", "/usr/lib/llvm-19/lib");
    }
    let st = cmd
        .arg(&h)
        .args(["--use-core", "--no-doc-comments"])
        .args(["--allowlist-file", ".*tcm_megasas.*"])
        .arg("-o")
        .arg(dir.join("tcm_megasas.rs"))
        .status()
        .unwrap_or_else(|e| panic!("{bindgen}: {e}: run 'make deps'"));
    assert!(st.success(), "bindgen failed on {}", hdr.display());
}
