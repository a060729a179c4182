//! Any bytes a client sends after the HTTP/2 preface, in two reads: frames, header blocks
//! (HPACK, Huffman) and flow control must refuse or serve them, never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&cut, rest)) = data.split_first() else {
        return;
    };
    candado::hot_paths::http2_feed(rest, usize::from(cut) * 64);
});
