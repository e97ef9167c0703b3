// SPDX-License-Identifier: GPL-2.0
//! The pseudo-operations both interpreters share: the canary process's
//! last steps and verdict, and a child killed with its requests in flight.

use crate::input::Reader;
use crate::vhost::DISTURB_EVERY;
use std::time::Duration;

/// Rate-limits the disturbances: at most one of each kind (canary, for
/// which `canary` says yes; owner killed, 255; any other) per
/// `DISTURB_EVERY[kind]` inputs, counted in `since`.  Returns the
/// disturbance to carry out (0: none) and, for a killed owner, how long
/// after its fork (an input byte, 0 to 510 ms).
pub fn limit(
    since: &mut [u64; 3],
    disturb: u8,
    canary: impl Fn(u8) -> bool,
    r: &mut Reader<'_>,
) -> (u8, Duration) {
    for n in since.iter_mut() {
        *n += 1;
    }
    let kind = match disturb {
        0 => return (0, Duration::ZERO),
        d if canary(d) => 0,
        255 => 1,
        _ => 2,
    };
    if since[kind] < DISTURB_EVERY[kind] {
        return (0, Duration::ZERO);
    }
    since[kind] = 0;
    let after = if disturb == 255 {
        Duration::from_millis(2 * u64::from(r.u8()))
    } else {
        Duration::ZERO
    };
    (disturb, after)
}

/// The canary's end, in the child: closes its copy of the device's `fd`,
/// waits while the owner's requests complete and checks that its copy of
/// the memory, `m`, still holds the pattern it wrote (0xa5).  Exit codes:
/// 0 intact, 20 changed.
pub fn canary_end(fd: std::os::raw::c_int, m: &[u8]) -> u8 {
    vsdrv::sys::close_fd(fd);
    std::thread::sleep(Duration::from_millis(20));
    if m.iter().any(|&b| b != 0xa5) {
        return 20;
    }
    0
}

/// The canary's verdict from its exit `code`: 10 + i means `ioctls[i]` was
/// not refused with EPERM; `what` names the device.
pub fn canary_verdict(code: Option<u8>, ioctls: [&str; 3], what: &str) -> Result<(), String> {
    match code {
        Some(0) => Ok(()),
        Some(c @ 10..=12) => Err(format!(
            "a process that is not the owner: {} not refused with EPERM",
            ioctls[usize::from(c - 10)]
        )),
        Some(20) => Err(format!(
            "the canary's copy of the memory changed: written by the {what}"
        )),
        c => Err(format!("the canary process ended with {c:?}")),
    }
}

/// Forks `child` (which opens a device and posts requests, then waits)
/// and SIGKILLs it `after` the fork.
pub fn kill_after(child: impl FnOnce() -> u8, after: Duration) {
    let Some(pid) = vsdrv::sys::fork_child(child) else {
        return;
    };
    std::thread::sleep(after);
    vsdrv::sys::kill_child(pid);
    let _ = vsdrv::sys::wait_child(pid);
}
