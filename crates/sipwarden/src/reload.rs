//! What SIGHUP does to the running configuration: read the file again; if it has errors, keep
//! the running configuration; otherwise take the reloadable settings from it and name the
//! changed ones that wait for a restart.

use std::path::Path;

use config::Config;

/// The result of reading the configuration file again.
#[derive(Debug)]
pub enum Reload {
    /// `run` was started without `--config`: there is no file to read.
    NoFile,
    /// The file has errors (`FILE:LINE: field: problem` lines), or the reloadable part of it
    /// does not fit the running configuration: nothing changes.
    Refused(Vec<String>),
    /// The file was read. `config` is the running configuration with the reloadable settings
    /// of the file (the same as before when `applied` is empty).
    Read {
        config: Box<Config>,
        /// Changed fields that now take effect.
        applied: Vec<String>,
        /// Changed fields that wait for the next start.
        restart_required: Vec<String>,
    },
}

/// Reads `path` again and merges its reloadable settings into `running`.
pub fn reload(running: &Config, path: Option<&Path>) -> Reload {
    let Some(path) = path else {
        return Reload::NoFile;
    };
    let new = match Config::from_file(path) {
        Ok(c) => c,
        Err(errors) => return Reload::Refused(errors.to_lines()),
    };
    let diff = Config::diff_reloadable(running, &new);
    let merged = running.with_reloadable_from(&new);
    // A zone kept from the running configuration (its removal waits for a restart) may
    // overlap a network that moved to another zone in the file.
    let problems = merged.problems();
    if !problems.is_empty() {
        return Reload::Refused(
            problems
                .into_iter()
                .map(|p| {
                    format!(
                        "{}: {p} (with the zones of the running configuration, \
                         which change only on a restart)",
                        path.display()
                    )
                })
                .collect(),
        );
    }
    Reload::Read {
        config: Box::new(merged),
        applied: diff.reloadable,
        restart_required: diff.restart_required,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn file(text: &str) -> tempfile::NamedTempFile {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(text.as_bytes()).unwrap();
        f
    }

    fn running() -> Config {
        Config::from_str_with(
            "[[listen]]\naddress = \"127.0.0.1:5060\"\n",
            "run.toml",
            &config::Overrides::none(),
        )
        .unwrap()
    }

    #[test]
    fn without_a_file_there_is_nothing_to_reload() {
        assert!(matches!(reload(&running(), None), Reload::NoFile));
    }

    #[test]
    fn a_broken_file_is_refused_with_its_errors() {
        let f = file("[registrar]\nmin_expires = 7200\n");
        let Reload::Refused(lines) = reload(&running(), Some(f.path())) else {
            panic!("accepted");
        };
        assert_eq!(lines.len(), 1);
        assert!(
            lines[0].ends_with(
                ":2: registrar.min_expires: must not be greater than max_expires (3600), got 7200"
            ),
            "{lines:?}"
        );
    }

    #[test]
    fn reloadable_changes_apply_and_restart_ones_are_named() {
        let f = file(
            "[general]\nlog_level = \"debug\"\nnode_name = \"other\"\n\
             [[listen]]\naddress = \"127.0.0.1:5070\"\n[transaction]\nt1_ms = 250\n",
        );
        let old = running();
        let Reload::Read {
            config,
            applied,
            restart_required,
        } = reload(&old, Some(f.path()))
        else {
            panic!("refused");
        };
        assert_eq!(applied, ["general.log_level", "transaction.t1_ms"]);
        assert_eq!(restart_required, ["general.node_name", "listen"]);
        assert_eq!(config.general.log_level, config::LogLevel::Debug);
        assert_eq!(config.transaction.t1_ms, 250);
        assert_eq!(config.listen, old.listen);
        assert_eq!(config.general.node_name, old.general.node_name);
    }
}
