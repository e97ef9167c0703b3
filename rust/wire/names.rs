// SPDX-License-Identifier: GPL-2.0

//! Names userspace gives the fabric through configfs: target port WWNs
//! (`naa.`, `fc.`, `iqn.`), `tpgt_N` directories and initiator port names
//! written to a TPG's `nexus` attribute.
//!
//! The accepted forms and the limits are those of C `vhost_scsi`, so that
//! targetcli and saved configurations work unchanged.  One difference: the
//! protocol prefix must start the name (C `vhost_scsi` accepts it anywhere in
//! the name, e.g. `x-naa.1`).

/// Longest name, including its terminating NUL, as in C `vhost_scsi`.
pub const NAME_LEN: usize = 256;

/// Highest TPG tag plus one: the tag is the guest's SCSI target id (one byte).
pub const MAX_TARGET: u16 = 256;

/// SCSI protocol identifier of an emulated port (SPC-4 table 362).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProtoId {
    /// `fc.` names: Fibre Channel.
    Fcp,
    /// `naa.` names: SAS, what targetcli creates.
    Sas,
    /// `iqn.` names: iSCSI.
    Iscsi,
}

impl ProtoId {
    /// The protocol identifier value target core expects.
    pub const fn id(self) -> u8 {
        match self {
            ProtoId::Fcp => 0x0,
            ProtoId::Sas => 0x6,
            ProtoId::Iscsi => 0x5,
        }
    }

    /// Human readable name, for log messages.
    pub const fn as_str(self) -> &'static str {
        match self {
            ProtoId::Fcp => "FCP",
            ProtoId::Sas => "SAS",
            ProtoId::Iscsi => "iSCSI",
        }
    }
}

/// Why a name was refused.  The fabric answers each with `-EINVAL`, as C
/// `vhost_scsi` does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NameError {
    /// No `naa.`, `fc.` or `iqn.` prefix.
    UnknownPrefix,
    /// `NAME_LEN` bytes or more.
    TooLong,
    /// Empty, or a NUL byte inside.
    Malformed,
    /// Not `tpgt_<decimal>`.
    BadTpgt,
    /// TPG tag of `MAX_TARGET` or more.
    TpgtRange,
    /// Initiator name of another protocol than the target port's.
    ProtoMismatch,
}

impl NameError {
    /// Text for the kernel log.
    pub const fn as_str(self) -> &'static str {
        match self {
            NameError::UnknownPrefix => "no naa., fc. or iqn. prefix",
            NameError::TooLong => "name too long",
            NameError::Malformed => "malformed name",
            NameError::BadTpgt => "not tpgt_<number>",
            NameError::TpgtRange => "tpgt out of range 0..255",
            NameError::ProtoMismatch => "initiator protocol differs from the target port's",
        }
    }
}

/// A parsed port name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PortName<'a> {
    /// Protocol the prefix selects.
    pub proto: ProtoId,
    /// The name as target core records it (`fc.` is dropped, as upstream does).
    pub name: &'a [u8],
}

fn split_proto(name: &[u8]) -> Result<PortName<'_>, NameError> {
    if name.is_empty() || name.contains(&0) {
        return Err(NameError::Malformed);
    }
    let (proto, skip) = if name.starts_with(b"naa.") {
        (ProtoId::Sas, 0)
    } else if name.starts_with(b"fc.") {
        (ProtoId::Fcp, 3)
    } else if name.starts_with(b"iqn.") {
        (ProtoId::Iscsi, 0)
    } else {
        return Err(NameError::UnknownPrefix);
    };
    if name.len() >= NAME_LEN {
        return Err(NameError::TooLong);
    }
    Ok(PortName {
        proto,
        name: &name[skip..],
    })
}

/// Parse the name of a target port directory (`mkdir .../vhost/<name>`).
pub fn parse_tport(name: &[u8]) -> Result<PortName<'_>, NameError> {
    split_proto(name)
}

/// Parse a TPG directory name, `tpgt_<N>` with N in `0..MAX_TARGET`.
pub fn parse_tpgt(name: &[u8]) -> Result<u16, NameError> {
    let digits = name.strip_prefix(b"tpgt_").ok_or(NameError::BadTpgt)?;
    if digits.is_empty() || digits.len() > 5 || !digits.iter().all(u8::is_ascii_digit) {
        return Err(NameError::BadTpgt);
    }
    let n = digits
        .iter()
        .fold(0u32, |n, d| n * 10 + u32::from(d - b'0'));
    if n >= u32::from(MAX_TARGET) {
        return Err(NameError::TpgtRange);
    }
    // The check above bounds `n` below 256.
    Ok(n as u16)
}

/// What a write to a TPG's `nexus` attribute asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NexusRequest<'a> {
    /// `NULL`: drop the I_T nexus.
    Drop,
    /// Create the I_T nexus for this initiator port name.
    Create(PortName<'a>),
}

/// Parse what userspace wrote to `nexus` for a target port of protocol
/// `tport`.  One trailing newline is ignored.
pub fn parse_nexus(page: &[u8], tport: ProtoId) -> Result<NexusRequest<'_>, NameError> {
    if page.starts_with(b"NULL") {
        return Ok(NexusRequest::Drop);
    }
    let page = page.strip_suffix(b"\n").unwrap_or(page);
    let port = split_proto(page)?;
    if port.proto != tport {
        return Err(NameError::ProtoMismatch);
    }
    Ok(NexusRequest::Create(port))
}

/// Longest initiator name target core keeps (`TRANSPORT_IQN_LEN` less its NUL).
pub const INITIATOR_MAX: usize = 223;

/// The initiator port name of a TPG's second endpoint, derived from the
/// name of the TPG's nexus (`nexus`, as target core records it), written to
/// `out`; returns its length.
///
/// The first endpoint bound to a TPG runs in the nexus userspace created;
/// a second one (the other front end) is a second initiator and needs a
/// name of its own.  A name ending in 16 hex digits (a `naa.` or FC WWPN)
/// gets its low 24 bits plus one, so it stays a WWPN of the same company
/// (OUI) and the SCSI transport ID of persistent reservations stays valid:
/// `naa.5001405000000001` gives `naa.5001405000000002`.  Any other name
/// (`iqn.`) gets `.2` appended.
pub fn second_initiator(nexus: &[u8], out: &mut [u8; NAME_LEN]) -> Result<usize, NameError> {
    if nexus.is_empty() || nexus.contains(&0) {
        return Err(NameError::Malformed);
    }
    let n = nexus.len();
    let hex16 = n >= 16 && nexus[n - 16..].iter().all(u8::is_ascii_hexdigit);
    if hex16 {
        if n > INITIATOR_MAX {
            return Err(NameError::TooLong);
        }
        out[..n].copy_from_slice(nexus);
        let low = nexus[n - 6..].iter().fold(0u32, |v, &d| {
            // Checked above: an ASCII hex digit.
            (v << 4) | (d as char).to_digit(16).unwrap_or(0)
        });
        let next = (low + 1) & 0xff_ffff;
        let upper = nexus[n - 6..].iter().any(u8::is_ascii_uppercase);
        for (i, b) in out[n - 6..n].iter_mut().enumerate() {
            let nib = (next >> (20 - 4 * i)) & 0xf;
            let digits = if upper {
                b"0123456789ABCDEF"
            } else {
                b"0123456789abcdef"
            };
            *b = digits[nib as usize];
        }
        Ok(n)
    } else {
        if n + 2 > INITIATOR_MAX {
            return Err(NameError::TooLong);
        }
        out[..n].copy_from_slice(nexus);
        out[n..n + 2].copy_from_slice(b".2");
        Ok(n + 2)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tport_names() {
        let p = parse_tport(b"naa.5001405abcdef012").unwrap();
        assert_eq!(p.proto, ProtoId::Sas);
        assert_eq!(p.name, b"naa.5001405abcdef012");
        let p = parse_tport(b"fc.21000024ff314c48").unwrap();
        assert_eq!(p.proto, ProtoId::Fcp);
        assert_eq!(p.name, b"21000024ff314c48");
        assert_eq!(
            parse_tport(b"iqn.2003-01.org.x:t").unwrap().proto,
            ProtoId::Iscsi
        );
        assert_eq!(parse_tport(b"eui.1234"), Err(NameError::UnknownPrefix));
        assert_eq!(parse_tport(b"x-naa.1"), Err(NameError::UnknownPrefix));
        assert_eq!(parse_tport(b""), Err(NameError::Malformed));
        assert_eq!(parse_tport(b"naa.\0"), Err(NameError::Malformed));
    }

    #[test]
    fn tport_length_limit() {
        let mut long = [b'1'; NAME_LEN];
        long[..4].copy_from_slice(b"naa.");
        assert_eq!(parse_tport(&long), Err(NameError::TooLong));
        assert!(parse_tport(&long[..NAME_LEN - 1]).is_ok());
    }

    #[test]
    fn tpgt() {
        assert_eq!(parse_tpgt(b"tpgt_0"), Ok(0));
        assert_eq!(parse_tpgt(b"tpgt_1"), Ok(1));
        assert_eq!(parse_tpgt(b"tpgt_255"), Ok(255));
        assert_eq!(parse_tpgt(b"tpgt_256"), Err(NameError::TpgtRange));
        assert_eq!(parse_tpgt(b"tpgt_65536"), Err(NameError::TpgtRange));
        assert_eq!(parse_tpgt(b"tpgt_999999"), Err(NameError::BadTpgt));
        assert_eq!(parse_tpgt(b"tpgt_"), Err(NameError::BadTpgt));
        assert_eq!(parse_tpgt(b"tpgt_-1"), Err(NameError::BadTpgt));
        assert_eq!(parse_tpgt(b"tpg_1"), Err(NameError::BadTpgt));
        assert_eq!(parse_tpgt(b"tpgt_1x"), Err(NameError::BadTpgt));
    }

    #[test]
    fn nexus() {
        assert_eq!(parse_nexus(b"NULL\n", ProtoId::Sas), Ok(NexusRequest::Drop));
        match parse_nexus(b"naa.5001405000000002\n", ProtoId::Sas) {
            Ok(NexusRequest::Create(p)) => assert_eq!(p.name, b"naa.5001405000000002"),
            r => panic!("{r:?}"),
        }
        assert_eq!(
            parse_nexus(b"iqn.x\n", ProtoId::Sas),
            Err(NameError::ProtoMismatch)
        );
        assert_eq!(parse_nexus(b"\n", ProtoId::Sas), Err(NameError::Malformed));
        assert_eq!(
            parse_nexus(b"bogus\n", ProtoId::Sas),
            Err(NameError::UnknownPrefix)
        );
    }

    /// Any input: never panics, and whatever is accepted respects the limits.
    #[test]
    fn second_initiators() {
        let mut out = [0u8; NAME_LEN];
        let mut derive = |n: &[u8]| second_initiator(n, &mut out).map(|l| out[..l].to_vec());
        assert_eq!(
            derive(b"naa.5001405000000001").unwrap(),
            b"naa.5001405000000002".to_vec()
        );
        // The low 24 bits wrap; the OUI part never changes.
        assert_eq!(
            derive(b"naa.5001405abcffffff").unwrap(),
            b"naa.5001405abc000000".to_vec()
        );
        assert_eq!(
            derive(b"naa.50014059ABCDEF0F").unwrap(),
            b"naa.50014059ABCDEF10".to_vec()
        );
        // FC names are recorded without their prefix.
        assert_eq!(
            derive(b"21000024ff314c48").unwrap(),
            b"21000024ff314c49".to_vec()
        );
        assert_eq!(
            derive(b"iqn.2003-01.org.x:vm1").unwrap(),
            b"iqn.2003-01.org.x:vm1.2".to_vec()
        );
        assert_eq!(derive(b"naa.xyz").unwrap(), b"naa.xyz.2".to_vec());
        assert_eq!(derive(b""), Err(NameError::Malformed));
        assert_eq!(derive(b"iqn.\0"), Err(NameError::Malformed));
        let mut long = [b'z'; INITIATOR_MAX];
        long[..4].copy_from_slice(b"iqn.");
        assert_eq!(
            derive(&long[..INITIATOR_MAX - 2]).unwrap().len(),
            INITIATOR_MAX
        );
        assert_eq!(derive(&long[..INITIATOR_MAX - 1]), Err(NameError::TooLong));
        // Never the nexus name itself.
        for n in [&b"naa.5001405000000001"[..], b"iqn.x", b"0000000000000000"] {
            assert_ne!(derive(n).unwrap(), n.to_vec());
        }
    }

    #[test]
    fn arbitrary_input() {
        let mut seed = 0x1234_5678_9abc_def0u64;
        let mut buf = [0u8; 300];
        for _ in 0..20_000 {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let len = (seed % 300) as usize;
            for (i, b) in buf[..len].iter_mut().enumerate() {
                let alphabet = b"naqifc.t_p0123456789\n\0NUL";
                *b = alphabet[((seed >> (i % 48)) as usize + i) % alphabet.len()];
            }
            if let Ok(p) = parse_tport(&buf[..len]) {
                assert!(p.name.len() < NAME_LEN && !p.name.contains(&0));
            }
            if let Ok(t) = parse_tpgt(&buf[..len]) {
                assert!(t < MAX_TARGET);
            }
            let _ = parse_nexus(&buf[..len], ProtoId::Sas);
        }
    }
}
