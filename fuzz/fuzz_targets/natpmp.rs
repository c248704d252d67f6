//! NAT-PMP messages off the wire (from the provider, or to the lab's
//! server): decoding arbitrary bytes must never panic, and whatever decodes
//! as a mapping encodes back to a well-formed response.
#![no_main]

use leakhound_model::natpmp::{self, Protocol, ResultCode};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = natpmp::decode_request(data);
    let _ = natpmp::decode_external_address(data);
    for p in [Protocol::Tcp, Protocol::Udp] {
        if let Ok(m) = natpmp::decode_mapping(data, p) {
            let back = natpmp::encode_mapping_response(ResultCode::Success, &m);
            assert_eq!(natpmp::decode_mapping(&back, p).ok(), Some(m));
        }
    }
});
