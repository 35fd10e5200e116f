//! Who still uses a removed object of a name: processes that map an older
//! incarnation of the name or of one of its lanes (removed with `rm`, or a
//! lane its writer moved away from). Such readers cannot be seen in the
//! current object's reader table; the kernel still lists their mappings.

/// A process that maps a removed object of a name, from
/// [`removed_users`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RemovedUser {
    /// The process.
    pub pid: u32,
    /// Its command name (`/proc/PID/comm`), if readable.
    pub command: String,
    /// The removed object it maps: the name, or a lane `name@<fingerprint>`.
    pub object: String,
}

/// The processes that map a removed object of `name` or of its lanes: readers
/// still on an object that was removed (and maybe created again) under
/// them, or on a lane whose layout moved. A following reader leaves at its
/// next read or wait; one that does not follow, or never reads again, stays
/// here until it drops its handle.
///
/// Reads `/proc/*/maps` (the processes this user may inspect; all of them as
/// root): a few milliseconds on a busy host, for tools, not for hot paths.
pub fn removed_users(name: &str) -> Vec<RemovedUser> {
    let Ok(procs) = std::fs::read_dir("/proc") else { return Vec::new() };
    let mut found = Vec::new();
    for entry in procs.flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else { continue };
        let Ok(maps) = std::fs::read_to_string(format!("/proc/{pid}/maps")) else { continue };
        let mut objects: Vec<String> = maps.lines().filter_map(|line| removed_object_of(line, name)).collect();
        objects.sort();
        objects.dedup();
        if objects.is_empty() {
            continue;
        }
        let command = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default().trim().to_string();
        found.extend(objects.into_iter().map(|object| RemovedUser { pid, command: command.clone(), object }));
    }
    found
}

/// The object a `/proc/PID/maps` line maps, if it is a removed data segment
/// or reader table of `name` or of one of its lanes.
fn removed_object_of(line: &str, name: &str) -> Option<String> {
    let path = line.strip_suffix(" (deleted)")?;
    let file = path.rsplit_once(" /dev/shm/")?.1;
    let object = file.strip_prefix("shmstate.")?;
    let object = object.strip_suffix(".readers").unwrap_or(object);
    let rest = object.strip_prefix(name)?;
    let lane = rest.strip_prefix('@').is_some_and(|fp| fp.len() == 16 && fp.bytes().all(|b| b.is_ascii_hexdigit()));
    (rest.is_empty() || lane).then(|| object.to_string())
}

#[cfg(test)]
mod tests {
    use super::removed_object_of;

    #[test]
    fn only_removed_objects_of_the_name_and_its_lanes_count() {
        let line = |file: &str| format!("7f00-7f10 r--s 00000000 00:1a 42       /dev/shm/{file}");
        let deleted = |file: &str| format!("{} (deleted)", line(file));
        assert_eq!(removed_object_of(&deleted("shmstate.app.cfg"), "app.cfg").as_deref(), Some("app.cfg"));
        assert_eq!(removed_object_of(&deleted("shmstate.app.cfg.readers"), "app.cfg").as_deref(), Some("app.cfg"));
        let lane = "app.cfg@00112233aabbccdd";
        assert_eq!(removed_object_of(&deleted(&format!("shmstate.{lane}")), "app.cfg").as_deref(), Some(lane));
        assert_eq!(removed_object_of(&line("shmstate.app.cfg"), "app.cfg"), None, "not removed");
        assert_eq!(removed_object_of(&deleted("shmstate.app.cfg2"), "app.cfg"), None, "another name");
        assert_eq!(removed_object_of(&deleted("shmstate.app.cfg@zz"), "app.cfg"), None, "no lane");
        assert_eq!(removed_object_of(&deleted("other.app.cfg"), "app.cfg"), None, "not ours");
    }
}
