//! Minimal FFI to the system libsrtp2 (2.x ABI, srtp2/srtp.h), shared by the
//! oracle test and the comparison benchmark.

#![allow(dead_code)]

use std::os::raw::{c_int, c_uint, c_ulong, c_void};

use media_srtp::SrtpProfile;

#[repr(C)]
#[derive(Clone, Copy)]
struct CryptoPolicy {
    cipher_type: u32,
    cipher_key_len: c_int,
    auth_type: u32,
    auth_key_len: c_int,
    auth_tag_len: c_int,
    sec_serv: c_int,
}

#[repr(C)]
struct Ssrc {
    kind: c_int,
    value: c_uint,
}

#[repr(C)]
struct Policy {
    ssrc: Ssrc,
    rtp: CryptoPolicy,
    rtcp: CryptoPolicy,
    key: *mut u8,
    keys: *mut c_void,
    num_master_keys: c_ulong,
    deprecated_ekt: *mut c_void,
    window_size: c_ulong,
    allow_repeat_tx: c_int,
    enc_xtn_hdr: *mut c_int,
    enc_xtn_hdr_count: c_int,
    next: *mut Policy,
}

const SSRC_ANY_INBOUND: c_int = 2;
const SSRC_ANY_OUTBOUND: c_int = 3;
pub const SEC_SERV_AUTH: c_int = 2;
const SEC_SERV_CONF_AND_AUTH: c_int = 3;

#[link(name = "srtp2")]
extern "C" {
    fn srtp_init() -> c_int;
    fn srtp_create(session: *mut *mut c_void, policy: *const Policy) -> c_int;
    fn srtp_dealloc(session: *mut c_void) -> c_int;
    pub fn srtp_protect(s: *mut c_void, pkt: *mut c_void, len: *mut c_int) -> c_int;
    pub fn srtp_unprotect(s: *mut c_void, pkt: *mut c_void, len: *mut c_int) -> c_int;
    pub fn srtp_protect_rtcp(s: *mut c_void, pkt: *mut c_void, len: *mut c_int) -> c_int;
    pub fn srtp_unprotect_rtcp(s: *mut c_void, pkt: *mut c_void, len: *mut c_int) -> c_int;
    fn srtp_crypto_policy_set_rtp_default(p: *mut CryptoPolicy);
    fn srtp_crypto_policy_set_rtcp_default(p: *mut CryptoPolicy);
    fn srtp_crypto_policy_set_aes_cm_128_hmac_sha1_32(p: *mut CryptoPolicy);
    fn srtp_crypto_policy_set_aes_gcm_128_16_auth(p: *mut CryptoPolicy);
}

/// One libsrtp session (one direction).
pub struct Lib {
    session: *mut c_void,
    _key: Vec<u8>,
}

impl Lib {
    pub fn new(profile: SrtpProfile, key_salt: &[u8], outbound: bool) -> Self {
        Self::with_rtcp_services(profile, key_salt, outbound, SEC_SERV_CONF_AND_AUTH)
    }

    pub fn with_rtcp_services(
        profile: SrtpProfile,
        key_salt: &[u8],
        outbound: bool,
        rtcp_services: c_int,
    ) -> Self {
        // SAFETY: plain C calls with valid pointers; the key buffer lives
        // as long as the session (libsrtp copies it anyway).
        unsafe {
            // libsrtp refuses a second srtp_init.
            static INIT: std::sync::Once = std::sync::Once::new();
            INIT.call_once(|| assert_eq!(srtp_init(), 0));
            let zero = CryptoPolicy {
                cipher_type: 0,
                cipher_key_len: 0,
                auth_type: 0,
                auth_key_len: 0,
                auth_tag_len: 0,
                sec_serv: 0,
            };
            let (mut rtp, mut rtcp) = (zero, zero);
            match profile {
                SrtpProfile::AesCm128HmacSha1_80 => {
                    srtp_crypto_policy_set_rtp_default(&mut rtp);
                    srtp_crypto_policy_set_rtcp_default(&mut rtcp);
                }
                SrtpProfile::AesCm128HmacSha1_32 => {
                    srtp_crypto_policy_set_aes_cm_128_hmac_sha1_32(&mut rtp);
                    srtp_crypto_policy_set_rtcp_default(&mut rtcp);
                }
                SrtpProfile::AeadAes128Gcm => {
                    srtp_crypto_policy_set_aes_gcm_128_16_auth(&mut rtp);
                    srtp_crypto_policy_set_aes_gcm_128_16_auth(&mut rtcp);
                }
            }
            rtcp.sec_serv = rtcp_services;
            let mut key = key_salt.to_vec();
            key.resize(64, 0);
            let policy = Policy {
                ssrc: Ssrc {
                    kind: if outbound {
                        SSRC_ANY_OUTBOUND
                    } else {
                        SSRC_ANY_INBOUND
                    },
                    value: 0,
                },
                rtp,
                rtcp,
                key: key.as_mut_ptr(),
                keys: std::ptr::null_mut(),
                num_master_keys: 0,
                deprecated_ekt: std::ptr::null_mut(),
                window_size: 128,
                allow_repeat_tx: 0,
                enc_xtn_hdr: std::ptr::null_mut(),
                enc_xtn_hdr_count: 0,
                next: std::ptr::null_mut(),
            };
            let mut session = std::ptr::null_mut();
            assert_eq!(srtp_create(&mut session, &policy), 0, "srtp_create");
            Self { session, _key: key }
        }
    }

    pub fn call(
        &mut self,
        f: unsafe extern "C" fn(*mut c_void, *mut c_void, *mut c_int) -> c_int,
        pkt: &[u8],
    ) -> Result<Vec<u8>, c_int> {
        let mut buf = pkt.to_vec();
        buf.resize(pkt.len() + 64, 0);
        let mut len = pkt.len() as c_int;
        // SAFETY: buf has 64 spare bytes, more than any tag + trailer.
        let rc = unsafe { f(self.session, buf.as_mut_ptr().cast(), &mut len) };
        if rc != 0 {
            return Err(rc);
        }
        buf.truncate(len as usize);
        Ok(buf)
    }
}

impl Drop for Lib {
    fn drop(&mut self) {
        // SAFETY: created by srtp_create, freed once.
        unsafe {
            srtp_dealloc(self.session);
        }
    }
}

impl Lib {
    /// In place on `buf[..len]` (room after it), as our contexts work.
    pub fn in_place(
        &mut self,
        f: unsafe extern "C" fn(*mut c_void, *mut c_void, *mut c_int) -> c_int,
        buf: &mut [u8],
        len: usize,
    ) -> Result<usize, c_int> {
        assert!(buf.len() >= len + 64);
        let mut n = len as c_int;
        // SAFETY: the buffer has 64 spare bytes after the packet.
        let rc = unsafe { f(self.session, buf.as_mut_ptr().cast(), &mut n) };
        if rc != 0 {
            return Err(rc);
        }
        Ok(n as usize)
    }
}
