//! NAT-PMP (RFC 6886) messages, as VPN providers use them for port
//! forwarding (ProtonVPN): encoding requests and decoding responses, and the
//! server side's decoding of requests and encoding of responses for the
//! lab's provider. Pure; anything malformed is an error naming what is wrong.

use std::net::Ipv4Addr;

/// NAT-PMP's UDP port on the gateway.
pub const PORT: u16 = 5351;
const VERSION: u8 = 0;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    Udp = 1,
    Tcp = 2,
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum NatPmpError {
    #[error("a NAT-PMP {what} is {want} bytes, this one is {got}")]
    Length {
        what: &'static str,
        want: usize,
        got: usize,
    },
    #[error("unsupported NAT-PMP version {0}")]
    Version(u8),
    #[error("unexpected NAT-PMP opcode {got} (expected {want})")]
    Opcode { got: u8, want: u8 },
    #[error("the NAT-PMP server refused: {0}")]
    Refused(ResultCode),
}

/// RFC 6886 section 3.5 result codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResultCode {
    Success,
    UnsupportedVersion,
    NotAuthorized,
    NetworkFailure,
    OutOfResources,
    UnsupportedOpcode,
    Other(u16),
}

impl From<u16> for ResultCode {
    fn from(v: u16) -> Self {
        match v {
            0 => ResultCode::Success,
            1 => ResultCode::UnsupportedVersion,
            2 => ResultCode::NotAuthorized,
            3 => ResultCode::NetworkFailure,
            4 => ResultCode::OutOfResources,
            5 => ResultCode::UnsupportedOpcode,
            n => ResultCode::Other(n),
        }
    }
}

impl From<ResultCode> for u16 {
    fn from(c: ResultCode) -> u16 {
        match c {
            ResultCode::Success => 0,
            ResultCode::UnsupportedVersion => 1,
            ResultCode::NotAuthorized => 2,
            ResultCode::NetworkFailure => 3,
            ResultCode::OutOfResources => 4,
            ResultCode::UnsupportedOpcode => 5,
            ResultCode::Other(n) => n,
        }
    }
}

impl std::fmt::Display for ResultCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ResultCode::Success => f.write_str("success"),
            ResultCode::UnsupportedVersion => f.write_str("unsupported version"),
            ResultCode::NotAuthorized => f.write_str("not authorized or refused"),
            ResultCode::NetworkFailure => f.write_str("network failure"),
            ResultCode::OutOfResources => f.write_str("out of resources"),
            ResultCode::UnsupportedOpcode => f.write_str("unsupported opcode"),
            ResultCode::Other(n) => write!(f, "result code {n}"),
        }
    }
}

/// A port mapping request (client side).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MapRequest {
    pub protocol: Protocol,
    pub internal_port: u16,
    /// 0: let the server choose.
    pub suggested_external_port: u16,
    /// Seconds; 0 deletes the mapping.
    pub lifetime: u32,
}

/// A port mapping the server granted.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Mapping {
    pub protocol: Protocol,
    pub epoch: u32,
    pub internal_port: u16,
    pub external_port: u16,
    pub lifetime: u32,
}

pub fn encode_external_address_request() -> [u8; 2] {
    [VERSION, 0]
}

pub fn encode_map_request(r: &MapRequest) -> [u8; 12] {
    let mut b = [0u8; 12];
    b[0] = VERSION;
    b[1] = r.protocol as u8;
    b[4..6].copy_from_slice(&r.internal_port.to_be_bytes());
    b[6..8].copy_from_slice(&r.suggested_external_port.to_be_bytes());
    b[8..12].copy_from_slice(&r.lifetime.to_be_bytes());
    b
}

fn header(
    b: &[u8],
    what: &'static str,
    want_len: usize,
    want_op: u8,
) -> Result<(ResultCode, u32), NatPmpError> {
    if b.len() != want_len {
        return Err(NatPmpError::Length {
            what,
            want: want_len,
            got: b.len(),
        });
    }
    if b[0] != VERSION {
        return Err(NatPmpError::Version(b[0]));
    }
    if b[1] != want_op {
        return Err(NatPmpError::Opcode {
            got: b[1],
            want: want_op,
        });
    }
    let code = ResultCode::from(u16::from_be_bytes([b[2], b[3]]));
    let epoch = u32::from_be_bytes([b[4], b[5], b[6], b[7]]);
    Ok((code, epoch))
}

/// The server's answer to an external-address request.
pub fn decode_external_address(b: &[u8]) -> Result<(u32, Ipv4Addr), NatPmpError> {
    let (code, epoch) = header(b, "external address response", 12, 128)?;
    if code != ResultCode::Success {
        return Err(NatPmpError::Refused(code));
    }
    Ok((epoch, Ipv4Addr::new(b[8], b[9], b[10], b[11])))
}

/// The server's answer to a map request for `protocol`.
pub fn decode_mapping(b: &[u8], protocol: Protocol) -> Result<Mapping, NatPmpError> {
    let (code, epoch) = header(b, "mapping response", 16, 128 + protocol as u8)?;
    if code != ResultCode::Success {
        return Err(NatPmpError::Refused(code));
    }
    Ok(Mapping {
        protocol,
        epoch,
        internal_port: u16::from_be_bytes([b[8], b[9]]),
        external_port: u16::from_be_bytes([b[10], b[11]]),
        lifetime: u32::from_be_bytes([b[12], b[13], b[14], b[15]]),
    })
}

/// Server side: a request as the provider receives it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ServerRequest {
    ExternalAddress,
    Map(MapRequest),
}

pub fn decode_request(b: &[u8]) -> Result<ServerRequest, NatPmpError> {
    match b {
        [VERSION, 0] => Ok(ServerRequest::ExternalAddress),
        [v, ..] if *v != VERSION => Err(NatPmpError::Version(*v)),
        [_, op @ (1 | 2), ..] => {
            if b.len() != 12 {
                return Err(NatPmpError::Length {
                    what: "mapping request",
                    want: 12,
                    got: b.len(),
                });
            }
            Ok(ServerRequest::Map(MapRequest {
                protocol: if *op == 1 {
                    Protocol::Udp
                } else {
                    Protocol::Tcp
                },
                internal_port: u16::from_be_bytes([b[4], b[5]]),
                suggested_external_port: u16::from_be_bytes([b[6], b[7]]),
                lifetime: u32::from_be_bytes([b[8], b[9], b[10], b[11]]),
            }))
        }
        [_, op, ..] => Err(NatPmpError::Opcode { got: *op, want: 1 }),
        _ => Err(NatPmpError::Length {
            what: "request",
            want: 2,
            got: b.len(),
        }),
    }
}

pub fn encode_external_address_response(code: ResultCode, epoch: u32, ip: Ipv4Addr) -> [u8; 12] {
    let mut b = [0u8; 12];
    b[1] = 128;
    b[2..4].copy_from_slice(&u16::from(code).to_be_bytes());
    b[4..8].copy_from_slice(&epoch.to_be_bytes());
    b[8..12].copy_from_slice(&ip.octets());
    b
}

pub fn encode_mapping_response(code: ResultCode, m: &Mapping) -> [u8; 16] {
    let mut b = [0u8; 16];
    b[1] = 128 + m.protocol as u8;
    b[2..4].copy_from_slice(&u16::from(code).to_be_bytes());
    b[4..8].copy_from_slice(&m.epoch.to_be_bytes());
    b[8..10].copy_from_slice(&m.internal_port.to_be_bytes());
    b[10..12].copy_from_slice(&m.external_port.to_be_bytes());
    b[12..16].copy_from_slice(&m.lifetime.to_be_bytes());
    b
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_laid_out_as_rfc_6886_section_3_3() {
        assert_eq!(encode_external_address_request(), [0, 0]);
        // Map TCP internal 51413, let the server choose, 60 s.
        let b = encode_map_request(&MapRequest {
            protocol: Protocol::Tcp,
            internal_port: 51413,
            suggested_external_port: 0,
            lifetime: 60,
        });
        assert_eq!(b, [0, 2, 0, 0, 0xc8, 0xd5, 0, 0, 0, 0, 0, 60]);
    }

    #[test]
    fn a_mapping_response_decodes_field_by_field() {
        // Version 0, op 130 (TCP mapping), success, epoch 1000,
        // internal 51413, external 40123, lifetime 60.
        let b = [
            0, 130, 0, 0, 0, 0, 0x03, 0xe8, 0xc8, 0xd5, 0x9c, 0xbb, 0, 0, 0, 60,
        ];
        let m = decode_mapping(&b, Protocol::Tcp).unwrap();
        assert_eq!(
            m,
            Mapping {
                protocol: Protocol::Tcp,
                epoch: 1000,
                internal_port: 51413,
                external_port: 40123,
                lifetime: 60
            }
        );
        assert_eq!(encode_mapping_response(ResultCode::Success, &m), b);
    }

    #[test]
    fn the_external_address_round_trips() {
        let b = encode_external_address_response(
            ResultCode::Success,
            7,
            Ipv4Addr::new(203, 0, 113, 77),
        );
        assert_eq!(b, [0, 128, 0, 0, 0, 0, 0, 7, 203, 0, 113, 77]);
        assert_eq!(
            decode_external_address(&b).unwrap(),
            (7, Ipv4Addr::new(203, 0, 113, 77))
        );
    }

    #[test]
    fn garbage_and_refusals_are_named_errors() {
        assert!(matches!(
            decode_mapping(&[], Protocol::Tcp),
            Err(NatPmpError::Length { got: 0, .. })
        ));
        assert!(matches!(
            decode_mapping(&[0; 15], Protocol::Tcp),
            Err(NatPmpError::Length { got: 15, .. })
        ));
        let mut b = [0u8; 16];
        b[0] = 1;
        assert_eq!(
            decode_mapping(&b, Protocol::Tcp),
            Err(NatPmpError::Version(1))
        );
        b[0] = 0;
        b[1] = 129;
        assert_eq!(
            decode_mapping(&b, Protocol::Tcp),
            Err(NatPmpError::Opcode {
                got: 129,
                want: 130
            })
        );
        b[1] = 130;
        b[3] = 2;
        let e = decode_mapping(&b, Protocol::Tcp).unwrap_err();
        assert_eq!(e, NatPmpError::Refused(ResultCode::NotAuthorized));
        assert!(e.to_string().contains("refused"), "{e}");
        b[3] = 9;
        assert_eq!(
            decode_mapping(&b, Protocol::Tcp),
            Err(NatPmpError::Refused(ResultCode::Other(9)))
        );
    }

    #[test]
    fn the_server_decodes_requests_and_refuses_garbage() {
        assert_eq!(decode_request(&[0, 0]), Ok(ServerRequest::ExternalAddress));
        let req = MapRequest {
            protocol: Protocol::Udp,
            internal_port: 51413,
            suggested_external_port: 51413,
            lifetime: 7200,
        };
        assert_eq!(
            decode_request(&encode_map_request(&req)),
            Ok(ServerRequest::Map(req))
        );
        assert!(matches!(
            decode_request(&[]),
            Err(NatPmpError::Length { .. })
        ));
        assert_eq!(decode_request(&[2, 0]), Err(NatPmpError::Version(2)));
        assert!(matches!(
            decode_request(&[0, 7, 0, 0]),
            Err(NatPmpError::Opcode { got: 7, .. })
        ));
        assert!(matches!(
            decode_request(&[0, 1, 0, 0, 0]),
            Err(NatPmpError::Length { want: 12, .. })
        ));
    }
}
