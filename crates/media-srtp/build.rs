//! Finds the system libsrtp2 (Debian: libsrtp2-dev), the reference
//! implementation the oracle test cross-checks against. The library itself
//! never links it.

use std::process::Command;

fn main() {
    println!("cargo::rustc-check-cfg=cfg(libsrtp2)");
    println!("cargo::rerun-if-changed=build.rs");
    println!("cargo::rerun-if-env-changed=PKG_CONFIG_PATH");
    println!("cargo::rerun-if-env-changed=PKG_CONFIG_LIBDIR");
    let found = Command::new("pkg-config")
        .args(["--exists", "libsrtp2"])
        .status()
        .is_ok_and(|s| s.success());
    if found {
        println!("cargo::rustc-cfg=libsrtp2");
    }
}
