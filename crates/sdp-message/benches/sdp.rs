//! Parse and rewrite costs on the bodies a relay sees most.

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use sdp_message::{parse, Rewriter};

/// A typical softphone audio offer (~300 bytes).
const AUDIO: &[u8] = b"v=0\r\n\
o=- 3912442338 3912442338 IN IP4 192.168.1.100\r\n\
s=-\r\n\
c=IN IP4 192.168.1.100\r\n\
t=0 0\r\n\
m=audio 10000 RTP/AVP 96 9 0 8 101\r\n\
a=rtpmap:96 opus/48000/2\r\n\
a=fmtp:96 useinbandfec=1\r\n\
a=rtpmap:9 G722/8000\r\n\
a=rtpmap:0 PCMU/8000\r\n\
a=rtpmap:8 PCMA/8000\r\n\
a=rtpmap:101 telephone-event/8000\r\n\
a=fmtp:101 0-15\r\n\
a=ptime:20\r\n\
a=sendrecv\r\n";

/// SRTP + ICE offer (~1 KiB).
const ICE_CRYPTO: &[u8] = b"v=0\r\n\
o=alice 2207 1559 IN IP4 192.168.0.12\r\n\
s=Talk\r\n\
c=IN IP4 192.168.0.12\r\n\
t=0 0\r\n\
a=ice-pwd:31ec21eb38b2ec6d36e8dc7b\r\n\
a=ice-ufrag:0a1aaa1b\r\n\
m=audio 7078 RTP/SAVP 96 97 0 8 101\r\n\
a=rtpmap:96 opus/48000/2\r\n\
a=fmtp:96 useinbandfec=1\r\n\
a=rtpmap:97 speex/16000\r\n\
a=rtpmap:101 telephone-event/8000\r\n\
a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz|2^31\r\n\
a=crypto:2 AES_CM_128_HMAC_SHA1_32 inline:c3BhcmtsaW5nIHRvd2VyIGluIHRoZSBzdW1tZXIg|2^31|1:1\r\n\
a=rtcp:7079\r\n\
a=candidate:1 1 UDP 2130706303 192.168.0.12 7078 typ host\r\n\
a=candidate:1 2 UDP 2130706302 192.168.0.12 7079 typ host\r\n\
a=candidate:2 1 UDP 1694498687 203.0.113.50 7078 typ srflx raddr 192.168.0.12 rport 7078\r\n\
a=candidate:2 2 UDP 1694498686 203.0.113.50 7079 typ srflx raddr 192.168.0.12 rport 7079\r\n\
a=rtcp-fb:* trr-int 1000\r\n\
a=sendrecv\r\n";

fn bench(c: &mut Criterion) {
    let relay = IpAddr::V4(Ipv4Addr::new(203, 0, 113, 5));

    let mut g = c.benchmark_group("parse");
    for (name, body) in [("audio_offer", AUDIO), ("ice_crypto_offer", ICE_CRYPTO)] {
        g.throughput(Throughput::Bytes(body.len() as u64));
        g.bench_function(name, |b| b.iter(|| parse(black_box(body)).unwrap()));
    }
    // Parse plus decoding every attribute, the worst case for a caller that
    // inspects everything.
    g.bench_function("ice_crypto_offer_typed", |b| {
        b.iter(|| {
            let d = parse(black_box(ICE_CRYPTO)).unwrap();
            d.media
                .iter()
                .flat_map(|m| &m.attributes)
                .filter(|a| a.typed().is_ok())
                .count()
        })
    });
    g.finish();

    let mut g = c.benchmark_group("rewrite");
    let parsed = parse(AUDIO).unwrap();
    g.bench_function("audio_conn_port", |b| {
        b.iter(|| {
            let mut rw = Rewriter::new(black_box(&parsed));
            rw.set_session_connection(relay)
                .set_media_port(0, 30000)
                .unwrap();
            rw.finish()
        })
    });
    g.bench_function("audio_parse_conn_port", |b| {
        b.iter(|| {
            let d = parse(black_box(AUDIO)).unwrap();
            let mut rw = Rewriter::new(&d);
            rw.set_session_connection(relay)
                .set_media_port(0, 30000)
                .unwrap();
            rw.finish()
        })
    });
    let parsed = parse(ICE_CRYPTO).unwrap();
    g.bench_function("ice_crypto_relay", |b| {
        b.iter(|| {
            let mut rw = Rewriter::new(black_box(&parsed));
            rw.set_origin_address(relay)
                .set_session_connection(relay)
                .remove_attributes_everywhere("candidate")
                .set_media_port(0, 30000)
                .unwrap()
                .set_rtcp(0, 30001, None)
                .unwrap();
            rw.finish()
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
