//! `sipwarden user add|list|remove`: the local users that digest authentication accepts.
//!
//! Users live in the embedded store of the data directory, one record per (realm, username)
//! holding HA1 = H(username:realm:password) for MD5, SHA-256 and SHA-512-256. The password
//! itself is never stored or printed. The store is opened by one process at a time: while
//! `sipwarden run` holds it, these commands report that it is locked.

use std::io::{BufRead, IsTerminal, Write};
use std::path::Path;

use auth::Algorithm;
use clap::{Args, Subcommand};
use store::{RedbStore, UserStore};

use crate::cli::{EXIT_INVALID, EXIT_OK, EXIT_USAGE};

/// Shortest password accepted: the SBC faces password guessers on the Internet.
pub const MIN_PASSWORD_LEN: usize = 8;
/// Longest username accepted.
pub const MAX_USERNAME_LEN: usize = 128;

#[derive(Debug, Args)]
pub struct UserArgs {
    /// The configuration file (for general.data_dir and auth.realm). Without it, the embedded
    /// defaults ($SIPWARDEN_DATA_DIR applies either way).
    #[arg(short, long, value_name = "FILE", global = true)]
    pub config: Option<std::path::PathBuf>,
    #[command(subcommand)]
    pub command: UserCommand,
}

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Add a user, or set a new password for an existing one (asks for the password twice, or
    /// reads one line from standard input with --password-stdin).
    Add {
        /// The username phones send (`username=` of their credentials).
        username: String,
        /// The realm; default: the configuration's auth.realm.
        #[arg(long)]
        realm: Option<String>,
        /// Read the password from the first line of standard input (for scripts).
        #[arg(long)]
        password_stdin: bool,
    },
    /// List users and their realms (never a secret).
    List {
        /// Only this realm.
        #[arg(long)]
        realm: Option<String>,
    },
    /// Remove a user.
    Remove {
        username: String,
        /// The realm; default: the configuration's auth.realm.
        #[arg(long)]
        realm: Option<String>,
    },
}

/// Runs the command against the store in `data_dir`; `configured_realm` is the configuration's
/// `auth.realm`, used when `--realm` is absent. Returns the exit code. The caller loads the
/// configuration named by `args.config` (as `run` does) to find both.
/// Opens the embedded store for `sipwarden COMMAND`, or says on `err` why it cannot (most often:
/// `sipwarden run` holds it, since redb admits one process at a time).
pub(crate) fn open_store(
    command: &str,
    data_dir: &Path,
    err: &mut impl Write,
) -> Option<RedbStore> {
    match RedbStore::open(data_dir) {
        Ok(s) => Some(s),
        Err(e) => {
            let _ = writeln!(
                err,
                "sipwarden {command}: cannot open the store in {}: {e}{}",
                data_dir.display(),
                if matches!(e, store::StoreError::Locked) {
                    " (stop `sipwarden run` first: the store is opened by one process at a time)"
                } else {
                    ""
                }
            );
            None
        }
    }
}

pub fn run(args: &UserArgs, data_dir: &Path, configured_realm: Option<&str>) -> u8 {
    let stdin = std::io::stdin();
    let interactive = stdin.is_terminal();
    let mut input = stdin.lock();
    let mut out = std::io::stdout().lock();
    let mut err = std::io::stderr().lock();
    let Some(store) = open_store("user", data_dir, &mut err) else {
        return EXIT_INVALID;
    };
    let mut io = Io {
        input: &mut input,
        out: &mut out,
        err: &mut err,
        interactive,
    };
    execute(args, &store, configured_realm, &mut io)
}

/// Where the command reads and writes, so that tests can drive it.
pub struct Io<'a> {
    pub input: &'a mut dyn BufRead,
    pub out: &'a mut dyn Write,
    pub err: &'a mut dyn Write,
    /// Standard input is a terminal: prompt with echo off.
    pub interactive: bool,
}

/// The command on any user store.
pub fn execute(
    args: &UserArgs,
    store: &dyn UserStore,
    configured_realm: Option<&str>,
    io: &mut Io<'_>,
) -> u8 {
    match &args.command {
        UserCommand::Add {
            username,
            realm,
            password_stdin,
        } => {
            let Some(realm) = realm.as_deref().or(configured_realm) else {
                let _ = writeln!(
                    io.err,
                    "sipwarden user add: no realm: give --realm or set auth.realm"
                );
                return EXIT_USAGE;
            };
            if let Err(why) = check_name(username).and_then(|()| check_name(realm)) {
                let _ = writeln!(io.err, "sipwarden user add: {why}");
                return EXIT_USAGE;
            }
            let password = match read_password(io, *password_stdin) {
                Ok(p) => p,
                Err(why) => {
                    let _ = writeln!(io.err, "sipwarden user add: {why}");
                    return EXIT_USAGE;
                }
            };
            let record = auth::user_credentials(
                username,
                realm,
                &password,
                &[Algorithm::Md5, Algorithm::Sha256, Algorithm::Sha512_256],
            );
            match store.put_user(&record) {
                Ok(old) => {
                    let verb = if old.is_some() { "updated" } else { "added" };
                    let _ = writeln!(io.out, "{verb} {username} in realm {realm}");
                    EXIT_OK
                }
                Err(e) => {
                    let _ = writeln!(io.err, "sipwarden user add: {e}");
                    EXIT_INVALID
                }
            }
        }
        UserCommand::List { realm } => {
            let mut after: Option<(String, String)> = None;
            let mut n = 0usize;
            loop {
                let page = match store
                    .list_users(after.as_ref().map(|(r, u)| (r.as_str(), u.as_str())), 512)
                {
                    Ok(p) => p,
                    Err(e) => {
                        let _ = writeln!(io.err, "sipwarden user list: {e}");
                        return EXIT_INVALID;
                    }
                };
                let Some(last) = page.last() else { break };
                after = Some((last.realm.clone(), last.username.clone()));
                for u in &page {
                    if realm.as_deref().is_some_and(|r| r != u.realm) {
                        continue;
                    }
                    let algs: Vec<&str> = u.algorithms().iter().map(|a| a.name()).collect();
                    let _ = writeln!(io.out, "{}\t{}\t{}", u.realm, u.username, algs.join(","));
                    n += 1;
                }
            }
            let _ = writeln!(io.err, "{n} user(s)");
            EXIT_OK
        }
        UserCommand::Remove { username, realm } => {
            let Some(realm) = realm.as_deref().or(configured_realm) else {
                let _ = writeln!(
                    io.err,
                    "sipwarden user remove: no realm: give --realm or set auth.realm"
                );
                return EXIT_USAGE;
            };
            match store.remove_user(realm, username) {
                Ok(Some(_)) => {
                    let _ = writeln!(io.out, "removed {username} from realm {realm}");
                    EXIT_OK
                }
                Ok(None) => {
                    let _ = writeln!(
                        io.err,
                        "sipwarden user remove: no user {username} in realm {realm}"
                    );
                    EXIT_INVALID
                }
                Err(e) => {
                    let _ = writeln!(io.err, "sipwarden user remove: {e}");
                    EXIT_INVALID
                }
            }
        }
    }
}

/// Usernames and realms: printable, no `:` (HA1 joins them with colons, so a colon would make
/// two different users share an HA1 input) and not too long.
fn check_name(s: &str) -> Result<(), String> {
    if s.is_empty() {
        return Err("empty username or realm".into());
    }
    if s.len() > MAX_USERNAME_LEN {
        return Err(format!("`{s}` is longer than {MAX_USERNAME_LEN} bytes"));
    }
    if s.chars()
        .any(|c| c.is_control() || c == ':' || c == '"' || c == '\\')
    {
        return Err(format!(
            "`{}` contains a control character, `:`, `\"` or `\\`",
            s.escape_debug()
        ));
    }
    Ok(())
}

fn read_line(input: &mut dyn BufRead) -> Result<String, String> {
    let mut line = String::new();
    input
        .read_line(&mut line)
        .map_err(|e| format!("cannot read the password: {e}"))?;
    while line.ends_with('\n') || line.ends_with('\r') {
        line.pop();
    }
    Ok(line)
}

fn read_password(io: &mut Io<'_>, from_stdin: bool) -> Result<String, String> {
    let password = if from_stdin {
        read_line(io.input)?
    } else if io.interactive {
        let first = prompt(io, "Password: ")?;
        let second = prompt(io, "Again: ")?;
        if first != second {
            return Err("the passwords differ".into());
        }
        first
    } else {
        return Err("standard input is not a terminal: use --password-stdin".into());
    };
    if password.chars().count() < MIN_PASSWORD_LEN {
        return Err(format!(
            "the password must have at least {MIN_PASSWORD_LEN} characters"
        ));
    }
    Ok(password)
}

/// Prompts on standard error and reads a line with the terminal's echo off.
fn prompt(io: &mut Io<'_>, text: &str) -> Result<String, String> {
    let _ = write!(io.err, "{text}");
    let _ = io.err.flush();
    let guard = EchoOff::new();
    let line = read_line(io.input);
    drop(guard);
    let _ = writeln!(io.err);
    line
}

/// Turns the terminal's echo off until dropped.
struct EchoOff(Option<nix::sys::termios::Termios>);

impl EchoOff {
    fn new() -> EchoOff {
        use nix::sys::termios::{tcgetattr, tcsetattr, LocalFlags, SetArg};
        let stdin = std::io::stdin();
        let Ok(saved) = tcgetattr(&stdin) else {
            return EchoOff(None);
        };
        let mut t = saved.clone();
        t.local_flags.remove(LocalFlags::ECHO);
        match tcsetattr(&stdin, SetArg::TCSANOW, &t) {
            Ok(()) => EchoOff(Some(saved)),
            Err(_) => EchoOff(None),
        }
    }
}

impl Drop for EchoOff {
    fn drop(&mut self) {
        if let Some(saved) = self.0.take() {
            let _ = nix::sys::termios::tcsetattr(
                std::io::stdin(),
                nix::sys::termios::SetArg::TCSANOW,
                &saved,
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;
    use store::Ha1Algorithm;

    #[derive(Debug, Parser)]
    struct T {
        #[command(flatten)]
        args: UserArgs,
    }

    fn exec(store: &dyn UserStore, argv: &[&str], stdin: &str) -> (u8, String, String) {
        let mut full = vec!["user"];
        full.extend_from_slice(argv);
        let t = T::try_parse_from(full).unwrap();
        let mut input = stdin.as_bytes();
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let code = execute(
            &t.args,
            store,
            Some("sipwarden.test"),
            &mut Io {
                input: &mut input,
                out: &mut out,
                err: &mut err,
                interactive: false,
            },
        );
        (
            code,
            String::from_utf8(out).unwrap(),
            String::from_utf8(err).unwrap(),
        )
    }

    #[test]
    fn add_list_remove_and_no_password_on_disk() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = RedbStore::open(dir.path()).unwrap();
            let (code, out, _) = exec(
                &store,
                &["add", "alice", "--password-stdin"],
                "correct horse battery\n",
            );
            assert_eq!(
                (code, out.as_str()),
                (EXIT_OK, "added alice in realm sipwarden.test\n")
            );
            let (code, out, _) = exec(
                &store,
                &["add", "alice", "--password-stdin"],
                "correct horse battery\r\n",
            );
            assert_eq!(
                (code, out.as_str()),
                (EXIT_OK, "updated alice in realm sipwarden.test\n")
            );
            exec(
                &store,
                &["add", "bob", "--realm", "other", "--password-stdin"],
                "12345678",
            );
            let u = store.get_user("sipwarden.test", "alice").unwrap().unwrap();
            assert_eq!(
                u.ha1_for(Ha1Algorithm::Sha256).unwrap(),
                Algorithm::Sha256
                    .hash_parts(&[b"alice", b"sipwarden.test", b"correct horse battery"])
                    .as_slice()
            );
            assert_eq!(u.algorithms().len(), 3);
            let (code, out, err) = exec(&store, &["list"], "");
            assert_eq!(code, EXIT_OK);
            assert_eq!(
                out,
                "other\tbob\tMD5,SHA-256,SHA-512-256\nsipwarden.test\talice\tMD5,SHA-256,SHA-512-256\n"
            );
            assert_eq!(err, "2 user(s)\n");
            let (_, out, _) = exec(&store, &["list", "--realm", "other"], "");
            assert_eq!(out, "other\tbob\tMD5,SHA-256,SHA-512-256\n");
            let (code, _, _) = exec(&store, &["remove", "bob"], "");
            assert_eq!(code, EXIT_INVALID, "bob is in realm other");
            let (code, out, _) = exec(&store, &["remove", "bob", "--realm", "other"], "");
            assert_eq!(
                (code, out.as_str()),
                (EXIT_OK, "removed bob from realm other\n")
            );
        }
        let bytes = std::fs::read(dir.path().join(store::DB_FILE_NAME)).unwrap();
        let needle = b"correct horse";
        assert!(!bytes.windows(needle.len()).any(|w| w == needle));
    }

    #[test]
    fn refusals() {
        let store = store::MemoryStore::new();
        let (code, _, err) = exec(&store, &["add", "alice", "--password-stdin"], "short\n");
        assert_eq!(code, EXIT_USAGE);
        assert!(err.contains("at least 8"), "{err}");
        let (code, _, err) = exec(&store, &["add", "alice"], "");
        assert_eq!(code, EXIT_USAGE);
        assert!(err.contains("--password-stdin"), "{err}");
        let (code, _, _) = exec(&store, &["add", "a:b", "--password-stdin"], "longenough\n");
        assert_eq!(code, EXIT_USAGE);
        assert!(store.list_users(None, 10).unwrap().is_empty());
        let t = T::try_parse_from(["user", "add", "x", "--password-stdin"]).unwrap();
        let mut input: &[u8] = b"longenough\n";
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let code = execute(
            &t.args,
            &store,
            None,
            &mut Io {
                input: &mut input,
                out: &mut out,
                err: &mut err,
                interactive: false,
            },
        );
        assert_eq!(code, EXIT_USAGE, "no realm anywhere");
        let t = T::try_parse_from(["user", "list", "-c", "/etc/sw.toml"]).unwrap();
        assert_eq!(t.args.config.as_deref(), Some(Path::new("/etc/sw.toml")));
    }
}
