//! The user and group databases: names to IDs, and the identity a child runs as.
//!
//! Why this module exists: `user = "www-data"` in a configuration, `--user` on a command
//! line and an init's privilege drop all need the same answers (who is this, what is their
//! primary group, which other groups do they belong to), and those answers come from NSS,
//! not only from `/etc/passwd`: LDAP, sssd and systemd's dynamic users live behind glibc's
//! `getpwnam_r` and friends. One careful copy here replaces the hand-rolled ones, so that
//! every caller retries on a small buffer (`ERANGE`), tells "no such user" from "the
//! database failed", and resolves a numeric user to its own primary group.
//!
//! Everything here reads files or talks to NSS services: call it before forking, never in a
//! child between `fork` and `exec`.

use std::ffi::{CStr, CString, OsStr};
use std::io;
use std::mem::MaybeUninit;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

/// The user and groups a child runs as.
///
/// ```
/// use forkyard::users::Credentials;
///
/// let nobody = Credentials { uid: 65534, gid: 65534, groups: vec![65534] };
/// assert_eq!(nobody.uid, 65534);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Credentials {
    /// The user ID.
    pub uid: u32,
    /// The primary group ID.
    pub gid: u32,
    /// Supplementary groups (the user's, from `getgrouplist`, when switching users).
    pub groups: Vec<u32>,
}

/// An entry of the user database (`passwd`).
///
/// ```
/// let root = forkyard::users::user_by_uid(0).expect("the database answers").expect("root exists");
/// assert_eq!((root.name.as_str(), root.gid), ("root", 0));
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct User {
    /// The user ID.
    pub uid: u32,
    /// The primary group ID.
    pub gid: u32,
    /// The login name.
    pub name: String,
    /// The home directory.
    pub home: PathBuf,
}

/// Why a user or group could not be resolved.
///
/// ```
/// use forkyard::users::{LookupError, user_by_name};
///
/// let err = user_by_name("a\0b").expect_err("a NUL byte cannot be looked up");
/// assert!(matches!(err, LookupError::Nul { .. }));
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LookupError {
    /// No user has this name (and, where numbers are allowed, it is not a number).
    #[error("user '{0}' does not exist: create it (useradd) or give an existing name or a number")]
    NoSuchUser(String),
    /// No group has this name (and, where numbers are allowed, it is not a number).
    #[error("group '{0}' does not exist: create it (groupadd) or give an existing name or a number")]
    NoSuchGroup(String),
    /// A name cannot be passed to the C library because it contains a NUL byte.
    #[error("{what} {name:?} contains a NUL byte, which no name in the database can have")]
    Nul {
        /// `user` or `group`.
        what: &'static str,
        /// The name as given.
        name: String,
    },
    /// The database itself failed (an unreadable file, an NSS service that did not answer).
    #[error("looking up {what} failed: {source} (check /etc/nsswitch.conf and the services it names)")]
    Database {
        /// What was looked up (`user 'www-data'`, `the groups of 'www-data'`, ...).
        what: String,
        /// The C library's answer.
        #[source]
        source: io::Error,
    },
}

/// The largest buffer offered to a `*_r` lookup before giving up: an entry larger than this
/// (a group with a hundred thousand members) is treated as a failure, not an endless loop.
const MAX_BUFFER: usize = 1 << 24;

/// The first buffer offered to a `*_r` lookup; it doubles on `ERANGE`.
const FIRST_BUFFER: usize = 1024;

/// What a `*_r` call made of the key: an entry, none, or an error number.
enum Answer<T> {
    Found(T),
    Missing,
}

/// Runs a reentrant lookup (`getpwnam_r` and friends) with a buffer that starts at `first`
/// bytes and doubles while the call answers `ERANGE`. `call` gets the buffer and returns the
/// call's return code and, when the entry was found, what it extracted from it (the entry
/// points into the buffer, so it must be copied out inside `call`).
fn with_buffer<T>(
    what: impl Fn() -> String,
    first: usize,
    mut call: impl FnMut(&mut [u8]) -> (libc::c_int, Option<T>),
) -> Result<Answer<T>, LookupError> {
    let mut size = first.max(1);
    loop {
        let mut buf = vec![0u8; size];
        let (rc, found) = call(&mut buf);
        match rc {
            0 => return Ok(found.map_or(Answer::Missing, Answer::Found)),
            libc::ERANGE if size < MAX_BUFFER => size *= 2,
            libc::EINTR => {}
            // POSIX lets these mean "not found" (glibc returns 0, other NSS modules differ).
            libc::ENOENT | libc::ESRCH => return Ok(Answer::Missing),
            errno => return Err(LookupError::Database { what: what(), source: io::Error::from_raw_os_error(errno) }),
        }
    }
}

fn c_name(what: &'static str, name: &str) -> Result<CString, LookupError> {
    CString::new(name).map_err(|_| LookupError::Nul { what, name: name.to_string() })
}

/// Copies a `passwd` entry out of the buffer its strings point into.
///
/// # Safety
/// `pwd` must have been filled by a successful `getpw*_r` call whose buffer is still alive.
unsafe fn user_from(pwd: &libc::passwd) -> User {
    // SAFETY: the caller guarantees both strings are NUL-terminated and alive (they point
    // into the lookup's buffer); a null pointer is checked first.
    let text = |p: *const libc::c_char| if p.is_null() { &[][..] } else { unsafe { CStr::from_ptr(p) }.to_bytes() };
    User {
        uid: pwd.pw_uid,
        gid: pwd.pw_gid,
        name: String::from_utf8_lossy(text(pwd.pw_name)).into_owned(),
        home: PathBuf::from(OsStr::from_bytes(text(pwd.pw_dir))),
    }
}

/// The user named `name`, from the user database (files, LDAP, ... as NSS says); `None`
/// when there is no such user. A number is not a name here: see [`user_by_uid`].
///
/// ```
/// let root = forkyard::users::user_by_name("root").expect("the database answers");
/// assert_eq!(root.map(|u| u.uid), Some(0));
/// assert!(forkyard::users::user_by_name("no-such-user-here").expect("the database answers").is_none());
/// ```
pub fn user_by_name(name: &str) -> Result<Option<User>, LookupError> {
    user_by_name_with(name, FIRST_BUFFER)
}

fn user_by_name_with(name: &str, first: usize) -> Result<Option<User>, LookupError> {
    let c = c_name("user", name)?;
    let answer = with_buffer(
        || format!("user '{name}'"),
        first,
        |buf| {
            let mut pwd = MaybeUninit::<libc::passwd>::zeroed();
            let mut result: *mut libc::passwd = std::ptr::null_mut();
            // SAFETY: `c` is NUL-terminated, `pwd` and `result` are valid for writes, and
            // `buf` is valid for `buf.len()` bytes; all outlive the call.
            let rc = unsafe {
                libc::getpwnam_r(c.as_ptr(), pwd.as_mut_ptr(), buf.as_mut_ptr().cast(), buf.len(), &mut result)
            };
            // SAFETY: a non-null result points to `pwd`, filled by the call, whose strings
            // point into `buf`, alive here.
            let user = (rc == 0 && !result.is_null()).then(|| unsafe { user_from(pwd.assume_init_ref()) });
            (rc, user)
        },
    )?;
    Ok(match answer {
        Answer::Found(u) => Some(u),
        Answer::Missing => None,
    })
}

/// The user whose ID is `uid`; `None` when the database has no entry for it (a process may
/// still run as such a user).
///
/// ```
/// let nobody = forkyard::users::user_by_uid(65534).expect("the database answers");
/// assert_eq!(nobody.map(|u| u.name), Some("nobody".to_string()));
/// ```
pub fn user_by_uid(uid: u32) -> Result<Option<User>, LookupError> {
    let answer = with_buffer(
        || format!("user {uid}"),
        FIRST_BUFFER,
        |buf| {
            let mut pwd = MaybeUninit::<libc::passwd>::zeroed();
            let mut result: *mut libc::passwd = std::ptr::null_mut();
            // SAFETY: `pwd` and `result` are valid for writes and `buf` for `buf.len()`
            // bytes; all outlive the call.
            let rc =
                unsafe { libc::getpwuid_r(uid, pwd.as_mut_ptr(), buf.as_mut_ptr().cast(), buf.len(), &mut result) };
            // SAFETY: as in `user_by_name`: `pwd` was filled and `buf` is alive.
            let user = (rc == 0 && !result.is_null()).then(|| unsafe { user_from(pwd.assume_init_ref()) });
            (rc, user)
        },
    )?;
    Ok(match answer {
        Answer::Found(u) => Some(u),
        Answer::Missing => None,
    })
}

/// The ID of the group named `name`; `None` when there is no such group. A number is not a
/// name here ([`credentials`] accepts both).
///
/// ```
/// assert_eq!(forkyard::users::group_by_name("root").expect("the database answers"), Some(0));
/// ```
pub fn group_by_name(name: &str) -> Result<Option<u32>, LookupError> {
    group_by_name_with(name, FIRST_BUFFER)
}

fn group_by_name_with(name: &str, first: usize) -> Result<Option<u32>, LookupError> {
    let c = c_name("group", name)?;
    let answer = with_buffer(
        || format!("group '{name}'"),
        first,
        |buf| {
            let mut grp = MaybeUninit::<libc::group>::zeroed();
            let mut result: *mut libc::group = std::ptr::null_mut();
            // SAFETY: `c` is NUL-terminated, `grp` and `result` are valid for writes, and
            // `buf` is valid for `buf.len()` bytes; all outlive the call.
            let rc = unsafe {
                libc::getgrnam_r(c.as_ptr(), grp.as_mut_ptr(), buf.as_mut_ptr().cast(), buf.len(), &mut result)
            };
            // SAFETY: a non-null result points to `grp`, filled by the call; only the number
            // is read.
            let gid = (rc == 0 && !result.is_null()).then(|| unsafe { grp.assume_init_ref() }.gr_gid);
            (rc, gid)
        },
    )?;
    Ok(match answer {
        Answer::Found(g) => Some(g),
        Answer::Missing => None,
    })
}

/// The groups of `user` (whose primary group is `gid`) from the group database, `gid`
/// included, as `initgroups` would set them: what [`Credentials::groups`] holds when
/// switching to that user.
///
/// ```
/// let groups = forkyard::users::groups_of("root", 0).expect("the database answers");
/// assert!(groups.contains(&0));
/// ```
pub fn groups_of(user: &str, gid: u32) -> Result<Vec<u32>, LookupError> {
    let name = c_name("user", user)?;
    let mut n: libc::c_int = 32;
    loop {
        let len = usize::try_from(n).unwrap_or(0).max(1);
        let mut groups = vec![0 as libc::gid_t; len];
        let mut count = libc::c_int::try_from(len).unwrap_or(libc::c_int::MAX);
        // SAFETY: `name` is NUL-terminated, `groups` has room for `count` entries, and
        // `count` is valid for writes (the call stores the number of groups there).
        let ret = unsafe { libc::getgrouplist(name.as_ptr(), gid, groups.as_mut_ptr(), &mut count) };
        let count_len = usize::try_from(count).unwrap_or(0);
        if ret >= 0 {
            groups.truncate(count_len);
            return Ok(groups);
        }
        // glibc stores the number needed; grow to it (or double, if it did not say more).
        let wanted = if count_len > len { count_len } else { len * 2 };
        if wanted > MAX_BUFFER {
            return Err(LookupError::Database {
                what: format!("the groups of '{user}'"),
                source: io::Error::new(io::ErrorKind::OutOfMemory, format!("more than {MAX_BUFFER} groups")),
            });
        }
        n = libc::c_int::try_from(wanted).unwrap_or(libc::c_int::MAX);
    }
}

/// The identity to run a child as, from a configuration's `user` and `group` (each a name or
/// a number; a name is tried first):
///
/// - a user with a database entry runs with its uid, its primary group (also when given by
///   number: `user = "65534"` runs with `nobody`'s group, not 65534 because it is the uid)
///   and its groups from [`groups_of`];
/// - a user given by a number with no entry runs with gid = uid and no supplementary groups
///   (there is nothing to read them from);
/// - `group` replaces the primary group (the supplementary groups are read for that group);
/// - a group without a user runs with our uid, that group, and no supplementary groups;
/// - with neither, the result is our own identity, supplementary groups included: nothing
///   changes.
///
/// ```
/// use forkyard::users::credentials;
///
/// let nobody = credentials(Some("nobody"), None).expect("nobody exists");
/// assert_eq!((nobody.uid, nobody.gid), (65534, 65534));
/// let by_number = credentials(Some("65534"), Some("root")).expect("numbers need no entry");
/// assert_eq!((by_number.uid, by_number.gid), (65534, 0));
/// let err = credentials(Some("no-such-user"), None).expect_err("an unknown name");
/// assert_eq!(err.to_string().split(':').next(), Some("user 'no-such-user' does not exist"));
/// ```
pub fn credentials(user: Option<&str>, group: Option<&str>) -> Result<Credentials, LookupError> {
    let gid_of = |g: &str| -> Result<u32, LookupError> {
        match group_by_name(g)? {
            Some(gid) => Ok(gid),
            None => g.parse().map_err(|_| LookupError::NoSuchGroup(g.to_string())),
        }
    };
    let Some(user) = user else {
        let mut own = current();
        if let Some(g) = group {
            own.gid = gid_of(g)?;
            own.groups.clear();
        }
        return Ok(own);
    };
    let entry = match user_by_name(user)? {
        Some(u) => Some(u),
        None => {
            let uid: u32 = user.parse().map_err(|_| LookupError::NoSuchUser(user.to_string()))?;
            match user_by_uid(uid)? {
                Some(u) => Some(u),
                None => {
                    return Ok(Credentials { uid, gid: group.map(gid_of).transpose()?.unwrap_or(uid), groups: vec![] });
                }
            }
        }
    };
    let Some(entry) = entry else { return Err(LookupError::NoSuchUser(user.to_string())) };
    let gid = match group {
        Some(g) => gid_of(g)?,
        None => entry.gid,
    };
    let groups = groups_of(&entry.name, gid)?;
    Ok(Credentials { uid: entry.uid, gid, groups })
}

/// This process's real uid and gid and its supplementary groups.
fn current() -> Credentials {
    // SAFETY: getuid and getgid have no preconditions and cannot fail.
    let (uid, gid) = unsafe { (libc::getuid(), libc::getgid()) };
    // SAFETY: a size of 0 with a null list only asks for the count.
    let n = unsafe { libc::getgroups(0, std::ptr::null_mut()) };
    let mut groups = vec![0 as libc::gid_t; usize::try_from(n).unwrap_or(0)];
    let len = libc::c_int::try_from(groups.len()).unwrap_or(0);
    // SAFETY: `groups` has room for `len` entries.
    let got = unsafe { libc::getgroups(len, groups.as_mut_ptr()) };
    // A failure (the list grew between the calls, which only another thread's setgroups can
    // do) leaves no supplementary groups: the primary group still applies.
    groups.truncate(usize::try_from(got).unwrap_or(0));
    Credentials { uid, gid, groups }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_and_nobody_are_found_by_name_and_number() {
        let root = user_by_name("root").expect("database").expect("root exists");
        assert_eq!((root.uid, root.gid, root.home.as_os_str()), (0, 0, OsStr::new("/root")));
        let nobody = user_by_uid(65534).expect("database").expect("nobody exists");
        assert_eq!((nobody.name.as_str(), nobody.gid), ("nobody", 65534));
        assert_eq!(group_by_name("nogroup").expect("database"), Some(65534));
    }

    #[test]
    fn unknown_names_are_none_and_nul_bytes_an_error() {
        assert_eq!(user_by_name("no-such-user").expect("database"), None);
        assert_eq!(user_by_uid(4_242_424).expect("database"), None);
        assert_eq!(group_by_name("no-such-group").expect("database"), None);
        assert!(matches!(group_by_name("a\0b"), Err(LookupError::Nul { what: "group", .. })));
    }

    #[test]
    fn a_small_buffer_is_grown_on_erange() {
        // One byte cannot hold root's entry: glibc answers ERANGE, and the lookup retries.
        let root = user_by_name_with("root", 1).expect("database").expect("root exists");
        assert_eq!(root.name, "root");
        assert_eq!(group_by_name_with("root", 1).expect("database"), Some(0));
    }

    #[test]
    fn a_numeric_user_runs_with_its_entrys_primary_group() {
        let c = credentials(Some("65534"), None).expect("nobody exists");
        assert_eq!((c.uid, c.gid), (65534, 65534));
        // Debian's `sync` is uid 4 in group nogroup (65534): the number alone would give gid 4.
        let sync = user_by_name("sync").expect("database").expect("Debian has a user 'sync'");
        assert_ne!(sync.uid, sync.gid, "the test needs a user whose uid and gid differ");
        let c = credentials(Some(&sync.uid.to_string()), None).expect("sync exists");
        assert_eq!((c.uid, c.gid), (sync.uid, sync.gid));
        assert!(c.groups.contains(&sync.gid), "{c:?}");
    }

    #[test]
    fn a_number_without_an_entry_uses_it_as_the_gid_and_no_groups() {
        let c = credentials(Some("4242424"), None).expect("numbers need no entry");
        assert_eq!(c, Credentials { uid: 4_242_424, gid: 4_242_424, groups: vec![] });
        let c = credentials(Some("4242424"), Some("nogroup")).expect("numbers need no entry");
        assert_eq!((c.uid, c.gid), (4_242_424, 65534));
    }

    #[test]
    fn a_group_replaces_the_primary_group() {
        let c = credentials(Some("nobody"), Some("root")).expect("both exist");
        assert_eq!((c.uid, c.gid), (65534, 0));
        assert!(c.groups.contains(&0), "{c:?}");
        let c = credentials(None, Some("4242")).expect("a group by number needs no entry");
        // SAFETY: getuid has no preconditions.
        assert_eq!((c.uid, c.gid, c.groups.len()), (unsafe { libc::getuid() }, 4242, 0));
    }

    #[test]
    fn unknown_users_and_groups_are_errors_that_say_so() {
        let err = credentials(Some("no-such-user"), None).expect_err("unknown user");
        assert!(matches!(&err, LookupError::NoSuchUser(n) if n == "no-such-user"), "{err:?}");
        assert!(err.to_string().starts_with("user 'no-such-user' does not exist"), "{err}");
        let err = credentials(Some("root"), Some("no-such-group")).expect_err("unknown group");
        assert!(err.to_string().starts_with("group 'no-such-group' does not exist"), "{err}");
        let err = credentials(None, Some("no-such-group")).expect_err("unknown group");
        assert!(matches!(err, LookupError::NoSuchGroup(_)), "{err:?}");
    }

    #[test]
    fn neither_user_nor_group_is_our_own_identity() {
        let c = credentials(None, None).expect("our identity");
        // SAFETY: getuid and getgid have no preconditions.
        assert_eq!((c.uid, c.gid), unsafe { (libc::getuid(), libc::getgid()) });
    }
}
