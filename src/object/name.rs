//! Object names and the shm objects behind them.
//!
//! A name `N` maps to three objects in `/dev/shm`: `shmstate.N` (data),
//! `shmstate.N.readers` (reader table) and `shmstate.N.lock` (writer lock), and
//! for a map `shmstate.N.pages` (its nodes and values). The
//! prefix keeps `list`/`gc` away from other programs' objects.

/// Prefix of every object shmstate creates.
pub const PREFIX: &str = "shmstate.";
const READERS_SUFFIX: &str = ".readers";
const LOCK_SUFFIX: &str = ".lock";
/// A map's pages segment (`shmstate::map`).
const PAGES_SUFFIX: &str = ".pages";
/// Longest accepted name (the longest object name must fit NAME_MAX = 255).
pub const MAX_NAME_LEN: usize = 255 - PREFIX.len() - READERS_SUFFIX.len();
/// Separates an object's name from a lane's fingerprint: `name@<16 hex digits>`.
/// Users cannot put it in names, so a lane never collides with a user's object.
const LANE_SEPARATOR: char = '@';
/// `@` and 16 hex digits.
const LANE_SUFFIX_LEN: usize = 17;
/// Longest name whose lanes fit [`MAX_NAME_LEN`].
pub(crate) const MAX_LANED_NAME_LEN: usize = MAX_NAME_LEN - LANE_SUFFIX_LEN;

/// Checks a name: 1..=MAX_NAME_LEN bytes of `[A-Za-z0-9._-]`, not starting
/// with `.`, not ending with a suffix shmstate uses; or a lane of such a name
/// (`name@<16 hex digits>`, which only writers create).
pub(crate) fn validate(name: &str) -> Result<(), &'static str> {
    if let Some((base, _)) = split_lane(name) {
        return validate_base(base);
    }
    validate_base(name)
}

/// The name of the lane of `name` that carries the layout of fingerprint `fp`.
pub(crate) fn lane(name: &str, fp: u64) -> String {
    format!("{name}{LANE_SEPARATOR}{fp:016x}")
}

/// A lane's object name and fingerprint; `None` for any other name.
pub(crate) fn split_lane(name: &str) -> Option<(&str, u64)> {
    let at = name.len().checked_sub(LANE_SUFFIX_LEN)?;
    let (base, suffix) = (name.get(..at)?, name.get(at..)?);
    let hex = suffix.strip_prefix(LANE_SEPARATOR)?;
    if !hex.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) {
        return None;
    }
    Some((base, u64::from_str_radix(hex, 16).ok()?))
}

/// The lanes of `name` present in `/dev/shm` (names and fingerprints, sorted).
pub(crate) fn lanes_in_shm(name: &str) -> Vec<(String, u64)> {
    let mut out = Vec::new();
    let Ok(dir) = std::fs::read_dir("/dev/shm") else { return out };
    for entry in dir.flatten() {
        let file = entry.file_name();
        let Some(lane) = file.to_str().and_then(from_data_file) else { continue };
        if let Some((base, fp)) = split_lane(lane) {
            if base == name {
                out.push((lane.to_string(), fp));
            }
        }
    }
    out.sort();
    out
}

fn validate_base(name: &str) -> Result<(), &'static str> {
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
    if name.ends_with(READERS_SUFFIX) || name.ends_with(LOCK_SUFFIX) || name.ends_with(PAGES_SUFFIX) {
        return Err("must not end with \".readers\", \".lock\" or \".pages\"");
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

/// A map's pages segment's shm name.
pub(crate) fn pages(name: &str) -> String {
    format!("/{PREFIX}{name}{PAGES_SUFFIX}")
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
        let bad_lanes =
            ["x@0123", "x@0123456789ABCDEF", "@0123456789abcdef", "x@0123456789abcdeg", "x@y@0123456789abcdef"];
        for n in ["", "a/b", "../x", ".hidden", "x.readers", "x.lock", "x.pages", "sp ace", "é", "a@b", &long]
            .iter()
            .chain(&bad_lanes)
        {
            assert!(validate(n).is_err(), "{n:?} accepted");
        }
    }

    #[test]
    fn lanes_name_their_object_and_fingerprint() {
        let lane = lane("my.config", 0xd633_758a_ee69_37b0);
        assert_eq!(lane, "my.config@d633758aee6937b0");
        assert_eq!(validate(&lane), Ok(()));
        assert_eq!(split_lane(&lane), Some(("my.config", 0xd633_758a_ee69_37b0)));
        assert_eq!(split_lane("my.config"), None);
        assert_eq!(from_data_file(&data(&lane)[1..]), Some(lane.as_str()));
        let longest = "x".repeat(MAX_LANED_NAME_LEN);
        assert_eq!(validate(&super::lane(&longest, u64::MAX)), Ok(()));
    }

    #[test]
    fn object_names_fit_name_max() {
        let n = "x".repeat(MAX_NAME_LEN);
        assert_eq!(readers(&n).len() - 1, 255);
        assert_eq!(from_data_file(&data(&n)[1..]), Some(n.as_str()));
        assert_eq!(from_data_file("shmstate.x.readers"), None);
    }
}
