//! Header names: the ones an SBC reads get an enum value (compact forms folded in), the rest
//! keep their text.

use std::fmt;

macro_rules! header_names {
    ($( $variant:ident => $canon:literal $(, $compact:literal)? ;)*) => {
        /// A known header name. `Other` covers every extension header; compare its text
        /// case-insensitively.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        #[non_exhaustive]
        pub enum HeaderName {
            $( $variant, )*
            Other,
        }

        impl HeaderName {
            /// The canonical (long) spelling; `None` for `Other`.
            pub fn canonical(self) -> Option<&'static str> {
                match self {
                    $( HeaderName::$variant => Some($canon), )*
                    HeaderName::Other => None,
                }
            }

            /// The compact form (RFC 3261 7.3.3 and the registry), if the header has one.
            pub fn compact(self) -> Option<char> {
                match self {
                    $( $( HeaderName::$variant => Some($compact), )? )*
                    _ => None,
                }
            }

            /// Looks a name up case-insensitively, compact forms included.
            pub fn from_bytes(name: &[u8]) -> HeaderName {
                if name.len() == 1 {
                    return match name[0].to_ascii_lowercase() {
                        $( $( c if c == $compact as u8 => HeaderName::$variant, )? )*
                        _ => HeaderName::Other,
                    };
                }
                let mut buf = [0u8; 24];
                if name.len() > buf.len() {
                    return HeaderName::Other;
                }
                for (d, s) in buf.iter_mut().zip(name) {
                    *d = s.to_ascii_lowercase();
                }
                lookup_lower(&buf[..name.len()])
            }
        }
    };
}

header_names! {
    Accept => "Accept";
    AcceptContact => "Accept-Contact", 'a';
    AcceptEncoding => "Accept-Encoding";
    AcceptLanguage => "Accept-Language";
    AlertInfo => "Alert-Info";
    Allow => "Allow";
    AllowEvents => "Allow-Events", 'u';
    AuthenticationInfo => "Authentication-Info";
    Authorization => "Authorization";
    CallId => "Call-ID", 'i';
    CallInfo => "Call-Info";
    Contact => "Contact", 'm';
    ContentDisposition => "Content-Disposition";
    ContentEncoding => "Content-Encoding", 'e';
    ContentLanguage => "Content-Language";
    ContentLength => "Content-Length", 'l';
    ContentType => "Content-Type", 'c';
    CSeq => "CSeq";
    Date => "Date";
    ErrorInfo => "Error-Info";
    Event => "Event", 'o';
    Expires => "Expires";
    From => "From", 'f';
    Identity => "Identity", 'y';
    InReplyTo => "In-Reply-To";
    MaxForwards => "Max-Forwards";
    MimeVersion => "MIME-Version";
    MinExpires => "Min-Expires";
    MinSe => "Min-SE";
    Organization => "Organization";
    PAssertedIdentity => "P-Asserted-Identity";
    PPreferredIdentity => "P-Preferred-Identity";
    Path => "Path";
    Priority => "Priority";
    Privacy => "Privacy";
    ProxyAuthenticate => "Proxy-Authenticate";
    ProxyAuthorization => "Proxy-Authorization";
    ProxyRequire => "Proxy-Require";
    RAck => "RAck";
    Reason => "Reason";
    RecordRoute => "Record-Route";
    ReferTo => "Refer-To", 'r';
    ReferredBy => "Referred-By", 'b';
    RejectContact => "Reject-Contact", 'j';
    Replaces => "Replaces";
    ReplyTo => "Reply-To";
    RequestDisposition => "Request-Disposition", 'd';
    Require => "Require";
    RetryAfter => "Retry-After";
    Route => "Route";
    RSeq => "RSeq";
    Server => "Server";
    ServiceRoute => "Service-Route";
    SessionExpires => "Session-Expires", 'x';
    Subject => "Subject", 's';
    SubscriptionState => "Subscription-State";
    Supported => "Supported", 'k';
    Timestamp => "Timestamp";
    To => "To", 't';
    Unsupported => "Unsupported";
    UserAgent => "User-Agent";
    Via => "Via", 'v';
    Warning => "Warning";
    WwwAuthenticate => "WWW-Authenticate";
}

/// Lower-case name to variant. Matching on the length first keeps this a handful of compares.
fn lookup_lower(n: &[u8]) -> HeaderName {
    use HeaderName::*;
    match n {
        b"via" => Via,
        b"from" => From,
        b"to" => To,
        b"call-id" => CallId,
        b"cseq" => CSeq,
        b"contact" => Contact,
        b"max-forwards" => MaxForwards,
        b"content-length" => ContentLength,
        b"content-type" => ContentType,
        b"route" => Route,
        b"record-route" => RecordRoute,
        b"expires" => Expires,
        b"allow" => Allow,
        b"supported" => Supported,
        b"user-agent" => UserAgent,
        b"authorization" => Authorization,
        b"proxy-authorization" => ProxyAuthorization,
        b"www-authenticate" => WwwAuthenticate,
        b"proxy-authenticate" => ProxyAuthenticate,
        b"require" => Require,
        b"proxy-require" => ProxyRequire,
        b"accept" => Accept,
        b"accept-contact" => AcceptContact,
        b"accept-encoding" => AcceptEncoding,
        b"accept-language" => AcceptLanguage,
        b"alert-info" => AlertInfo,
        b"allow-events" => AllowEvents,
        b"authentication-info" => AuthenticationInfo,
        b"call-info" => CallInfo,
        b"content-disposition" => ContentDisposition,
        b"content-encoding" => ContentEncoding,
        b"content-language" => ContentLanguage,
        b"date" => Date,
        b"error-info" => ErrorInfo,
        b"event" => Event,
        b"identity" => Identity,
        b"in-reply-to" => InReplyTo,
        b"mime-version" => MimeVersion,
        b"min-expires" => MinExpires,
        b"min-se" => MinSe,
        b"organization" => Organization,
        b"p-asserted-identity" => PAssertedIdentity,
        b"p-preferred-identity" => PPreferredIdentity,
        b"path" => Path,
        b"priority" => Priority,
        b"privacy" => Privacy,
        b"rack" => RAck,
        b"reason" => Reason,
        b"refer-to" => ReferTo,
        b"referred-by" => ReferredBy,
        b"reject-contact" => RejectContact,
        b"replaces" => Replaces,
        b"reply-to" => ReplyTo,
        b"request-disposition" => RequestDisposition,
        b"retry-after" => RetryAfter,
        b"rseq" => RSeq,
        b"server" => Server,
        b"service-route" => ServiceRoute,
        b"session-expires" => SessionExpires,
        b"subject" => Subject,
        b"subscription-state" => SubscriptionState,
        b"timestamp" => Timestamp,
        b"unsupported" => Unsupported,
        b"warning" => Warning,
        _ => Other,
    }
}

impl fmt::Display for HeaderName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.canonical().unwrap_or("(extension)"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_canonical_and_compact_name_round_trips() {
        for name in [
            HeaderName::Via,
            HeaderName::CallId,
            HeaderName::WwwAuthenticate,
            HeaderName::PAssertedIdentity,
            HeaderName::SessionExpires,
            HeaderName::RequestDisposition,
        ] {
            let canon = name.canonical().unwrap();
            assert_eq!(HeaderName::from_bytes(canon.as_bytes()), name);
            assert_eq!(HeaderName::from_bytes(canon.to_uppercase().as_bytes()), name);
            if let Some(c) = name.compact() {
                assert_eq!(HeaderName::from_bytes(c.to_string().as_bytes()), name);
                assert_eq!(HeaderName::from_bytes(c.to_ascii_uppercase().to_string().as_bytes()), name);
            }
        }
        assert_eq!(HeaderName::from_bytes(b"MaX-fOrWaRdS"), HeaderName::MaxForwards);
        assert_eq!(HeaderName::from_bytes(b"X-Custom"), HeaderName::Other);
        assert_eq!(HeaderName::from_bytes(b"q"), HeaderName::Other);
        assert_eq!(HeaderName::from_bytes(b"a-very-long-extension-header-name"), HeaderName::Other);
    }
}
