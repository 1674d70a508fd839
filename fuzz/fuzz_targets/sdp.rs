//! `sdp_message::parse` on arbitrary bytes; a description that parses is rewritten with no edits
//! and must come out byte-identical, then the summary and every typed attribute are read.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sdp_message::{parse, summary, Rewriter};

fuzz_target!(|data: &[u8]| {
    let Ok(sdp) = parse(data) else {
        return;
    };
    let out = Rewriter::new(&sdp).finish();
    assert_eq!(
        out.as_slice(),
        data,
        "a rewrite without edits changed the description"
    );
    let again = parse(&out).expect("the identical bytes parse again");
    assert_eq!(again.media.len(), sdp.media.len());
    let _ = summary(&sdp);
    for a in sdp
        .attributes
        .iter()
        .chain(sdp.media.iter().flat_map(|m| m.attributes.iter()))
    {
        let _ = a.typed();
    }
});
