//! Object names and the shm objects behind them.
//!
//! A name `N` maps to three objects in `/dev/shm`: `shmstate.N` (data),
//! `shmstate.N.readers` (reader table) and `shmstate.N.lock` (writer lock). The
//! prefix keeps `list`/`gc` away from other programs' objects.

/// Prefix of every object shmstate creates.
pub const PREFIX: &str = "shmstate.";
const READERS_SUFFIX: &str = ".readers";
const LOCK_SUFFIX: &str = ".lock";
/// Longest accepted name (the longest object name must fit NAME_MAX = 255).
pub const MAX_NAME_LEN: usize = 255 - PREFIX.len() - READERS_SUFFIX.len();

/// Checks a user-supplied name: 1..=MAX_NAME_LEN bytes of `[A-Za-z0-9._-]`, not
/// starting with `.`, not ending with a suffix shmstate uses.
pub(crate) fn validate(name: &str) -> Result<(), &'static str> {
    if name.is_empty() {
        return Err("empty");
    }
    if name.len() > MAX_NAME_LEN {
        return Err("longer than 238 bytes");
    }
    if !name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-')) {
        return Err("only ASCII letters, digits, '.', '_' and '-' are allowed");
    }
    if name.starts_with('.') {
        return Err("must not start with '.'");
    }
    if name.ends_with(READERS_SUFFIX) || name.ends_with(LOCK_SUFFIX) {
        return Err("must not end with \".readers\" or \".lock\"");
    }
    Ok(())
}

/// `validate` as the error of an open.
pub(crate) fn check(name: &str) -> Result<(), crate::OpenError> {
    validate(name).map_err(|reason| crate::OpenError::InvalidName { name: name.into(), reason })
}

/// The data segment's shm name.
pub(crate) fn data(name: &str) -> String {
    format!("/{PREFIX}{name}")
}

/// The reader table's shm name.
pub(crate) fn readers(name: &str) -> String {
    format!("/{PREFIX}{name}{READERS_SUFFIX}")
}

/// The writer lock's shm name.
pub(crate) fn lock(name: &str) -> String {
    format!("/{PREFIX}{name}{LOCK_SUFFIX}")
}

/// The user name of a data-segment file name in `/dev/shm`, if it is one.
pub(crate) fn from_data_file(file: &str) -> Option<&str> {
    let n = file.strip_prefix(PREFIX)?;
    validate(n).ok().map(|()| n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_ordinary_names() {
        for n in ["myapp.config", "a", "A-b_c.9", &"x".repeat(MAX_NAME_LEN)] {
            assert_eq!(validate(n), Ok(()), "{n}");
        }
    }

    #[test]
    fn rejects_path_tricks_and_reserved_suffixes() {
        let long = "x".repeat(MAX_NAME_LEN + 1);
        for n in ["", "a/b", "../x", ".hidden", "x.readers", "x.lock", "sp ace", "é", &long] {
            assert!(validate(n).is_err(), "{n:?} accepted");
        }
    }

    #[test]
    fn object_names_fit_name_max() {
        let n = "x".repeat(MAX_NAME_LEN);
        assert_eq!(readers(&n).len() - 1, 255);
        assert_eq!(from_data_file(&data(&n)[1..]), Some(n.as_str()));
        assert_eq!(from_data_file("shmstate.x.readers"), None);
    }
}
