//! Digest authentication (RFC 3261 section 22, RFC 7616, RFC 8760) with stateless nonces, and a RADIUS client (RFC 2865, RFC 5090)
