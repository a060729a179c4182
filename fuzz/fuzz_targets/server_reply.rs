//! Any bytes a server sends back to a probe ClientHello: the parsers must decide or ask for
//! more, never panic, and not change their mind when more bytes follow a decision.
#![no_main]

use candado::check::{Parsed, Reply, parse_certificates, parse_server_reply};
use libfuzzer_sys::fuzz_target;

/// The decision, with the quoted bytes of an "invalid" reason left out.
fn decision(p: &Parsed) -> String {
    match p {
        Parsed::Done(Reply::Invalid { .. }) => "invalid".into(),
        other => format!("{other:?}"),
    }
}

fuzz_target!(|data: &[u8]| {
    let whole = parse_server_reply(data);
    // The reader stops at a decision: more bytes after it must not change it.
    if matches!(whole, Parsed::Done(_)) && data.len() + 5 <= 72 * 1024 {
        let mut longer = data.to_vec();
        longer.extend_from_slice(&[22, 3, 3, 0, 0]);
        assert_eq!(decision(&parse_server_reply(&longer)), decision(&whole));
    }
    let _ = parse_certificates(data);
});
