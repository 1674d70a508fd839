//! `Uri::parse` on arbitrary text: never panics, and a URI that parses is equivalent to itself
//! (RFC 3261 19.1.4 comparison is reflexive), also after a re-parse of its own text.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sip_message::{unescape, Host, Uri};

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(u) = Uri::parse(s) else {
        return;
    };
    assert!(u.equivalent(&u), "URI not equivalent to itself: {s:?}");
    assert_eq!(u.as_str(), s);
    let again = Uri::parse(u.as_str()).expect("a parsed URI re-parses");
    assert!(u.equivalent(&again) && again.equivalent(&u));
    let _ = u.scheme();
    if let Some(sip) = u.sip() {
        let _ = (
            sip.transport(),
            sip.user_param(),
            sip.method(),
            sip.maddr(),
            sip.ttl(),
            sip.lr(),
        );
        for (n, v) in sip.params.iter() {
            let _ = (unescape(n), v.map(unescape));
        }
        let _ = sip.header_pairs().count();
        if let Some(user) = sip.user {
            let _ = unescape(user);
        }
        assert!(sip.host.equivalent(&sip.host));
        let _ = Host::parse(sip.host_str).expect("host re-parses");
        let _ = sip.host.to_string();
    }
});
