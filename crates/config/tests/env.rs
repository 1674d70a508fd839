//! SIPWARDEN_DATA_DIR. Alone in its test binary, since it changes the process environment.

use std::path::Path;

use config::{Config, DATA_DIR_ENV};

#[test]
fn data_dir_from_the_environment() {
    std::env::set_var(DATA_DIR_ENV, "/tmp/sipwarden-env-test");
    assert_eq!(
        Config::embedded_default().general.data_dir,
        Path::new("/tmp/sipwarden-env-test")
    );
    let c = Config::from_str("[general]\ndata_dir = \"/srv/sw\"\n", "t.toml").unwrap();
    assert_eq!(
        c.general.data_dir,
        Path::new("/tmp/sipwarden-env-test"),
        "the environment wins"
    );

    std::env::set_var(DATA_DIR_ENV, "");
    assert_eq!(
        Config::embedded_default().general.data_dir,
        Path::new("/var/lib/sipwarden"),
        "empty is unset"
    );
    std::env::remove_var(DATA_DIR_ENV);
    assert_eq!(Config::embedded_default(), Config::default());
}
