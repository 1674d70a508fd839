//! SRTP/SRTCP (RFC 3711, RFC 7714) contexts keyed by SDES (RFC 4568): in-place protect and unprotect with clear drop reasons
