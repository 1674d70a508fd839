//! Owned, flattened view of a description for tooling (CLI output, logs,
//! JSON with the `serde` feature). It copies strings so it can outlive the
//! SIP message the SDP came from.

use crate::attr::Direction;
use crate::model::SessionDescription;

/// Summary of a whole description.
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct SdpSummary {
    /// `o=` address.
    pub origin_address: String,
    /// Session-level `c=` address, if any.
    pub connection: Option<String>,
    /// One entry per `m=` section.
    pub media: Vec<MediaSummary>,
}

/// Summary of one media section.
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct MediaSummary {
    /// Media type, e.g. `audio`.
    pub media: String,
    /// `m=` port.
    pub port: u16,
    /// Transport protocol.
    pub proto: String,
    /// Formats (payload types).
    pub formats: Vec<String>,
    /// Effective connection address (media-level, else session-level).
    pub connection: Option<String>,
    /// Effective direction (media, else session, else sendrecv).
    pub direction: Direction,
    /// `a=rtcp-mux` present.
    pub rtcp_mux: bool,
    /// Suites of the well-formed `a=crypto` lines, in order.
    pub crypto_suites: Vec<String>,
    /// Number of `a=candidate` lines.
    pub candidates: usize,
}

/// Builds the owned summary of `sdp`.
pub fn summary(sdp: &SessionDescription<'_>) -> SdpSummary {
    let media = sdp
        .media
        .iter()
        .enumerate()
        .map(|(i, m)| MediaSummary {
            media: m.media.to_owned(),
            port: m.port,
            proto: m.proto.to_owned(),
            formats: m.formats.iter().map(|f| (*f).to_owned()).collect(),
            connection: m.effective_connection(sdp).map(|c| c.address.to_owned()),
            direction: sdp.media_direction(i).unwrap_or(Direction::SendRecv),
            rtcp_mux: m.rtcp_mux(),
            crypto_suites: m
                .crypto()
                .filter_map(Result::ok)
                .map(|c| c.suite.to_owned())
                .collect(),
            candidates: m.candidate_count(),
        })
        .collect();
    SdpSummary {
        origin_address: sdp.origin.address.to_owned(),
        connection: sdp.connection.as_ref().map(|c| c.address.to_owned()),
        media,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse;

    #[test]
    fn summary_of_hold_offer() {
        let sdp = b"v=0\r\no=- 1 2 IN IP4 10.0.0.1\r\ns=-\r\nc=IN IP4 0.0.0.0\r\nt=0 0\r\na=sendonly\r\n\
m=audio 4000 RTP/SAVP 0 101\r\na=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:QUJD\r\na=rtcp-mux\r\n\
m=video 4002 RTP/AVP 96\r\nc=IN IP4 10.0.0.9\r\na=candidate:1 1 UDP 1 10.0.0.9 4002 typ host\r\na=inactive\r\n";
        let d = parse(sdp).unwrap();
        let s = summary(&d);
        assert_eq!(s.origin_address, "10.0.0.1");
        assert_eq!(s.connection.as_deref(), Some("0.0.0.0"));
        assert_eq!(
            s.media[0],
            MediaSummary {
                media: "audio".into(),
                port: 4000,
                proto: "RTP/SAVP".into(),
                formats: vec!["0".into(), "101".into()],
                connection: Some("0.0.0.0".into()),
                direction: Direction::SendOnly,
                rtcp_mux: true,
                crypto_suites: vec!["AES_CM_128_HMAC_SHA1_80".into()],
                candidates: 0,
            }
        );
        assert_eq!(s.media[1].connection.as_deref(), Some("10.0.0.9"));
        assert_eq!(s.media[1].direction, Direction::Inactive);
        assert_eq!(s.media[1].candidates, 1);
        assert!(!s.media[1].rtcp_mux);
    }

    #[cfg(feature = "serde")]
    #[test]
    fn summary_serializes() {
        let d = parse(
            b"v=0\r\no=- 1 2 IN IP4 10.0.0.1\r\ns=-\r\nm=audio 4000 RTP/AVP 0\r\na=sendonly\r\n",
        )
        .unwrap();
        let json = serde_json::to_string(&summary(&d)).unwrap();
        assert!(json.contains(r#""direction":"sendonly""#), "{json}");
        assert!(json.contains(r#""origin_address":"10.0.0.1""#), "{json}");
        assert!(json.contains(r#""connection":null"#), "{json}");
    }
}
