// SPDX-License-Identifier: GPL-2.0
//! vfu-megasas: a vfio-user server that presents tcm_virt's megasas adapter
//! (`/dev/tcm-megasas`) to an unmodified QEMU (>= 10.1, `vfio-user-pci`) as
//! a MegaRAID SAS 2108 ("gen2", PCI 1000:0079, subsystem 1000:9261), so that
//! a guest's own Linux `megaraid_sas` driver drives the adapter.
//!
//! ```text
//! vfu-megasas --socket /tmp/mr.sock --wwpn naa.5001405000000001 --tpgt 1
//! qemu-system-x86_64 -machine q35,memory-backend=mem -vga none \
//!   -object memory-backend-memfd,id=mem,size=1G,share=on \
//!   -device '{"driver":"vfio-user-pci","socket":{"type":"unix","path":"/tmp/mr.sock"}}'
//! ```
//!
//! # Design
//!
//! **Protocol by hand, no crates.**  The rust-vmm `vfio_user` crate (0.1.7)
//! was read and not used: its server answers every backend error with
//! `error = 0`, which QEMU's client reads as success (so a refused DMA map
//! would look mapped); it panics or allocates without bound on malformed
//! input (a VERSION `size` below its header underflows, `unwrap()` on the
//! capabilities string, a REGION_READ of 4 GiB is allocated); it misnames
//! `VFIO_DMA_UNMAP_FLAG_ALL` (1 << 2 instead of 1 << 1); and it brings
//! about 27 crates into a workspace that has none.  The subset QEMU 11.1
//! uses (VERSION, DMA_MAP/UNMAP with SCM_RIGHTS, DEVICE_GET_INFO,
//! GET_REGION_INFO, GET_IRQ_INFO, SET_IRQS, REGION_READ/WRITE,
//! DEVICE_RESET) is small: [`proto`] parses it with checked arithmetic, and
//! every malformed message gets an error reply (nothing from the client is
//! `unwrap()`ed).  Messages are handled strictly in order on one thread, so
//! a posted (NO_REPLY) register write is carried out before any later read,
//! which is what QEMU's posted writes assume.  The adapter ioctls come from
//! the `mfi` and `vsdrv` libraries (their uAPI numbers are checked there
//! against the header).
//!
//! **The PCI function** ([`config`]): a type-0 header with BAR0 a 32-bit
//! non-prefetchable 16 KiB memory BAR (Linux maps the first memory BAR; the
//! real 2108 has an I/O BAR first, which the gen2 template never uses, so
//! there is none), PM and MSI-X (one vector, table 0x2000, PBA 0x3800)
//! capabilities, 256 bytes of configuration space.  QEMU emulates the
//! MSI-X table and PBA itself; the server advertises them and takes the
//! vector's eventfd with SET_IRQS.  Regions: BAR0 and config space,
//! readable and writable, never mmap-able (every register access must
//! reach the state machine); BARs 1-5, ROM, VGA have size 0.  Interrupts:
//! INTx 1, MSI 0, MSI-X 1, ERR 0, REQ 0.
//!
//! **Registers** ([`regs`]): the gen2 template's registers over the
//! adapter's mapped register page.  The status word (scratch pad 0, also
//! outbound message 0) is the page's `fw_status` with bit 26 set: Linux
//! reads it as "MSI-X supported" and, for MFI adapters, also as
//! `fw_support_ieee` (it then builds IEEE/skinny SGLs, which the front end
//! accepts).  A write to the inbound queue port (0x40, or the 0xc4/0xc0
//! pair, 0xc0 posting) appends the value to `iq[iq_producer % 1024]`, then
//! stores `iq_producer + 1` with release ordering (the kernel reads the
//! entry after seeing the producer), then rings TCM_MEGASAS_DOORBELL.  If
//! 1024 entries are unread (the driver keeps at most 999 commands in
//! flight, so this does not happen with Linux) the server rings and waits
//! up to a second, then drops the frame and says so.  Reset: `MFI_INIT_READY`
//! (`MFI_RESET_FLAGS`) to the inbound doorbell while OPERATIONAL, and the
//! host_diag reset after the 0,4,b,2,7,d unlock sequence on seq_offset
//! (`megasas_adp_reset_gen2`: host_diag reads back write-enable, then its
//! reset bit clear once done), both become TCM_MEGASAS_RESET.  It waits
//! for the commands in flight, which can take longer than QEMU waits for
//! the answer to any message (`x-msg-timeout`, 5 s; with a 30 s reset on
//! the message thread the guest of `62-megasas_guest` never finished), so
//! it runs on a thread of
//! its own while the session goes on answering: until it returns, the
//! status word reads as before the reset (the driver's handshake waits for
//! it to change to READY), host_diag keeps its reset bit (which
//! `megasas_adp_reset_gen2` polls for up to 100 s), a second reset request
//! is ignored and posts are dropped (the driver posts nothing until it saw
//! READY).  A DMA_MAP/UNMAP or SET_IRQS that changes the adapter during a
//! reset waits for it (the kernel holds the device across the drain);
//! QEMU sends those at start, at memory hotplug and when the guest changes
//! its MSI-X set-up, not during a controller reset.
//!
//! **Interrupts.**  MSI-X: the vector's eventfd (QEMU's) becomes the
//! adapter's completion eventfd (VHOST_SET_VRING_CALL, index 0), so the
//! kernel signals the guest's vector directly and the server is not on the
//! reply path; no fd or disable sets it to -1.  INTx is supported as well,
//! for a guest without MSI-X (`megaraid_sas.msix_disable=1` or no
//! CONFIG_PCI_MSI): while MSI-X has no eventfd and INTx has one, the
//! adapter's completion eventfd is the server's own; when it fires, and
//! whenever the mask, the acknowledgement or the INTx mask change, the
//! server signals QEMU's INTx eventfd if replies are pending (the page's
//! `replies` count moved since the last write of bit 0 to
//! outbound_doorbell_clear) and outbound_intr_mask bit 0 is clear, then
//! treats INTx as masked until QEMU unmasks it (VFIO's automasked INTx:
//! SET_IRQS UNMASK after the guest's EOI, or the resample eventfd with
//! KVM).  outbound_intr_status bit 0 reads "replies pending" in both modes;
//! the firmware-state-change bit is never set.  MSI (count 0) is not
//! offered.
//!
//! **Guest memory.**  DMA_MAP with a file descriptor maps it (MAP_SHARED,
//! at the message's offset, writable unless the client maps read-only),
//! keeps the regions sorted by IOVA ([`dma`]: at most 64, none empty,
//! overlapping, wrapping or unaligned), and sets the adapter's memory table
//! to (IOVA, size, mapping) of each.  The first table set is followed by
//! TCM_MEGASAS_SET_ENDPOINT (the front end refuses it without a table); a
//! failed bind is reported and retried at the next map.  A writable
//! DMA_MAP without a descriptor is refused with ENOTSUP and a message
//! naming `memory-backend-memfd,share=on` (the server cannot reach such
//! memory: it would need DMA_READ/DMA_WRITE messages for every frame); a
//! read-only one without a descriptor (the BIOS ROM, which QEMU maps from
//! anonymous memory even with a memfd backend) is recorded and left out of
//! the table, so QEMU does not log an error for it.  DMA_UNMAP removes the
//! regions inside the range (a region only partly inside is an error; the
//! unmap-all flag removes all), sets the table without them, and only then
//! unmaps them.
//!
//! **Order.**  At start: open the device, VHOST_SET_OWNER, map the register
//! page (and check its ABI version), bind the socket.  One client is
//! accepted (the socket path is removed then); at its disconnect:
//! TCM_MEGASAS_CLEAR_ENDPOINT, close the adapter, unmap guest memory, exit
//! 0.  DEVICE_RESET is the power-on config space and register state plus
//! TCM_MEGASAS_RESET, on the reset thread as above.
//!
//! **Not supported:** migration and dirty page logging (no `migration`
//! capability), DMA_READ/DMA_WRITE (memory must be fd-backed),
//! REGION_WRITE_MULTI (not advertised, so QEMU does not send it), mmap-able
//! regions, an expansion ROM, MSI, the ERR and REQ interrupts, more than one
//! client, the firmware-state-change interrupt.

mod adapter;
mod config;
mod dma;
mod proto;
mod regs;
mod server;
mod sys;

use std::os::unix::net::UnixListener;
use std::path::PathBuf;
use std::process::ExitCode;

const USAGE: &str = "\
usage: vfu-megasas --socket PATH --wwpn NAA --tpgt N [--jbod] [--dev /dev/tcm-megasas]

A vfio-user server presenting tcm_virt's megasas adapter to QEMU
(-device '{\"driver\":\"vfio-user-pci\",\"socket\":{\"type\":\"unix\",\"path\":PATH}}')
as a MegaRAID SAS 2108. Guest RAM must be memory-backend-memfd,share=on.
Serves one client, exits 0 when it disconnects.";

struct Args {
    socket: PathBuf,
    opts: mfi::Options,
}

fn parse_args(args: &[String]) -> Result<Args, String> {
    let mut socket = None;
    let mut opts = mfi::Options::default();
    let mut wwpn = None;
    let mut tpgt = None;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut value = |name: &str| {
            it.next()
                .cloned()
                .ok_or_else(|| format!("{name} needs a value"))
        };
        match a.as_str() {
            "--socket" => socket = Some(PathBuf::from(value("--socket")?)),
            "--wwpn" => wwpn = Some(value("--wwpn")?),
            "--tpgt" => {
                let v = value("--tpgt")?;
                tpgt = Some(v.parse::<u16>().map_err(|_| format!("bad --tpgt {v}"))?);
            }
            "--dev" => opts.dev = value("--dev")?,
            "--jbod" => opts.jbod = true,
            "-h" | "--help" => return Err(String::new()),
            x => return Err(format!("unknown argument {x}")),
        }
    }
    let socket = socket.ok_or("--socket is required")?;
    opts.wwpn = wwpn.ok_or("--wwpn is required")?;
    opts.tpgt = tpgt.ok_or("--tpgt is required")?;
    if opts.wwpn.is_empty() || opts.wwpn.len() >= 224 || opts.wwpn.contains('\0') {
        return Err("--wwpn must be 1 to 223 bytes".into());
    }
    Ok(Args { socket, opts })
}

fn main() -> ExitCode {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let args = match parse_args(&argv) {
        Ok(a) => a,
        Err(e) if e.is_empty() => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("vfu-megasas: {e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("vfu-megasas: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: &Args) -> Result<(), String> {
    let adapter =
        adapter::Adapter::open(&args.opts).map_err(|e| format!("{}: {e}", args.opts.dev))?;
    eprintln!(
        "vfu-megasas: {} open, status {:#010x}, serving {} tpgt {}{}",
        args.opts.dev,
        regs::RegisterPage::fw_status(adapter::Backend::page(&adapter)),
        args.opts.wwpn,
        args.opts.tpgt,
        if args.opts.jbod { " (JBOD)" } else { "" }
    );
    if args.socket.exists() {
        return Err(format!(
            "{}: exists (remove a stale socket first)",
            args.socket.display()
        ));
    }
    let listener =
        UnixListener::bind(&args.socket).map_err(|e| format!("{}: {e}", args.socket.display()))?;
    eprintln!("vfu-megasas: listening on {}", args.socket.display());
    let accepted = listener.accept();
    // One client: nobody else may connect.
    let _ = std::fs::remove_file(&args.socket);
    drop(listener);
    let (stream, _) = accepted.map_err(|e| format!("accept: {e}"))?;
    eprintln!("vfu-megasas: connected");
    let mut s = server::Session::new(stream, adapter).map_err(|e| format!("session: {e}"))?;
    let r = s.run();
    s.finish();
    match r {
        Ok(server::End::Disconnected) => {
            eprintln!("vfu-megasas: disconnected");
            Ok(())
        }
        Err(e) => Err(format!("socket: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(v: &[&str]) -> Result<Args, String> {
        parse_args(&v.iter().map(|s| s.to_string()).collect::<Vec<_>>())
    }

    #[test]
    fn command_line() {
        let a = args(&[
            "--socket",
            "/tmp/s",
            "--wwpn",
            "naa.5001405000000001",
            "--tpgt",
            "3",
        ])
        .unwrap();
        assert_eq!(a.socket, PathBuf::from("/tmp/s"));
        assert_eq!((a.opts.tpgt, a.opts.jbod), (3, false));
        assert_eq!(a.opts.dev, "/dev/tcm-megasas");
        let a = args(&[
            "--jbod", "--dev", "/dev/x", "--socket", "s", "--wwpn", "w", "--tpgt", "1",
        ])
        .unwrap();
        assert!(a.opts.jbod);
        assert_eq!(a.opts.dev, "/dev/x");
        assert!(args(&["--socket", "s", "--wwpn", "w"]).is_err());
        assert!(args(&["--socket", "s", "--wwpn", "w", "--tpgt", "70000"]).is_err());
        assert!(args(&["--socket", "s", "--wwpn", "w", "--tpgt"]).is_err());
        let long = "n".repeat(224);
        assert!(args(&["--socket", "s", "--wwpn", &long, "--tpgt", "1"]).is_err());
        assert!(args(&["--bogus"]).is_err());
        assert_eq!(args(&["--help"]).err(), Some(String::new()));
    }
}
