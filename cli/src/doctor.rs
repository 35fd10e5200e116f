//! `shmstate doctor`: checks this host for what breaks shared-memory state
//! in production, and says what to do about each finding.
//!
//! Each check reads the system (statvfs of `/dev/shm`, systemd-logind's
//! configuration, cgroup limits, the objects' owners, the kernel's syscalls)
//! and never changes anything. A `problem` makes the exit code non-zero; a
//! `warning` does not. docs/OPERATING.md explains every finding.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};

use serde_json::{json, Value};
use shmstate::{ObjectInfo, OpenError};

use crate::table::human_size;

/// How much a finding matters.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
pub enum Severity {
    Ok,
    Info,
    Warning,
    Problem,
}

impl Severity {
    fn as_str(self) -> &'static str {
        match self {
            Severity::Ok => "ok",
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Problem => "problem",
        }
    }
}

/// One finding: which check, how bad, what it saw and what to do.
#[derive(Debug)]
pub struct Finding {
    pub check: &'static str,
    pub severity: Severity,
    pub message: String,
    pub advice: Option<String>,
}

fn finding(check: &'static str, severity: Severity, message: String, advice: Option<&str>) -> Finding {
    Finding { check, severity, message, advice: advice.map(str::to_string) }
}

/// What the checks look at: the objects, and where the host's files are
/// (`root` is `/`, or a directory holding a copy of `/etc` for tests and for
/// checking an image's configuration).
pub struct Host<'a> {
    pub objects: &'a [(String, Result<ObjectInfo, OpenError>)],
    pub root: &'a Path,
}

/// Every check, in the order they are printed.
pub fn run(host: &Host<'_>) -> Vec<Finding> {
    let mut out = Vec::new();
    shm_space(host, &mut out);
    remove_ipc(host, &mut out);
    owners(host, &mut out);
    unreadable(host, &mut out);
    collectable(host, &mut out);
    namespaces(host, &mut out);
    cgroup_memory(host, &mut out);
    kernel(&mut out);
    out
}

fn readable<'a>(host: &Host<'a>) -> impl Iterator<Item = &'a ObjectInfo> {
    host.objects.iter().filter_map(|(_, r)| r.as_ref().ok())
}

/// `(total, free)` bytes of the filesystem at `path`.
fn space(path: &str) -> Option<(u64, u64)> {
    let c = std::ffi::CString::new(path).ok()?;
    // SAFETY: `st` is a plain C struct that statvfs fills; `c` is a valid
    // NUL-terminated path for the duration of the call.
    let st = unsafe {
        let mut st: libc::statvfs = std::mem::zeroed();
        if libc::statvfs(c.as_ptr(), &mut st) != 0 {
            return None;
        }
        st
    };
    let block = st.f_frsize.max(1);
    Some((st.f_blocks.saturating_mul(block), st.f_bavail.saturating_mul(block)))
}

/// Bytes the shmstate files take in `/dev/shm` (data, reader tables, locks).
fn shmstate_bytes() -> u64 {
    let Ok(dir) = std::fs::read_dir("/dev/shm") else { return 0 };
    dir.flatten()
        .filter(|e| e.file_name().to_str().is_some_and(|n| n.starts_with("shmstate.")))
        .filter_map(|e| e.metadata().ok())
        .map(|m| m.blocks() * 512)
        .sum()
}

/// Docker's default `--shm-size`.
const DOCKER_DEFAULT_SHM: u64 = 64 * 1024 * 1024;

fn shm_space(host: &Host<'_>, out: &mut Vec<Finding>) {
    const CHECK: &str = "shm-space";
    let Some((total, free)) = space("/dev/shm") else {
        out.push(finding(
            CHECK,
            Severity::Problem,
            "/dev/shm is missing or not a filesystem".into(),
            Some("mount a tmpfs on /dev/shm (every Linux distribution does; in a container see --ipc/--shm-size)"),
        ));
        return;
    };
    let used = shmstate_bytes();
    let line = format!(
        "/dev/shm: {} in all, {} free; shmstate objects use {}",
        human_size(total),
        human_size(free),
        human_size(used)
    );
    if free < total / 10 {
        out.push(finding(
            CHECK,
            Severity::Problem,
            line,
            Some(
                "less than 10% of /dev/shm is free: a publish that needs a larger slot fails (ENOSPC); \
                 `shmstate gc` lists removable objects; give /dev/shm more room (mount -o remount,size=..., \
                 docker --shm-size, a larger emptyDir sizeLimit)",
            ),
        ));
    } else if total <= DOCKER_DEFAULT_SHM {
        out.push(finding(
            CHECK,
            Severity::Warning,
            line,
            Some("/dev/shm is 64 MiB or less, Docker's default: start the container with --shm-size or --ipc=host"),
        ));
    } else {
        out.push(finding(CHECK, Severity::Ok, line, None));
    }
    // A live writer whose max_size does not fit: its growth past the free
    // space fails with a publish error (the segment is allocated, never sparse).
    let cannot_grow: Vec<String> = readable(host)
        .filter(|i| i.writer_alive && i.max_size.saturating_sub(i.size) > free)
        .map(|i| format!("{} (max_size {})", i.name, human_size(i.max_size)))
        .collect();
    if !cannot_grow.is_empty() {
        out.push(finding(
            CHECK,
            Severity::Warning,
            format!("writers that may grow past the free space of /dev/shm: {}", cannot_grow.join(", ")),
            Some("set WriterOptions::max_size to what the state can reach, or give /dev/shm more room"),
        ));
    }
}

/// The files systemd-logind reads its `[Login]` settings from, in the order
/// later ones override earlier ones: the main file, then drop-ins sorted by
/// file name (a drop-in in /etc hides one of the same name in /run or /usr).
fn logind_files(root: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for main in ["usr/lib/systemd/logind.conf", "etc/systemd/logind.conf"] {
        let p = root.join(main);
        if p.is_file() {
            files.push(p);
        }
    }
    let mut dropins: BTreeMap<std::ffi::OsString, PathBuf> = BTreeMap::new();
    // Lowest precedence first, so a later directory's file of the same name wins.
    for dir in [
        "usr/lib/systemd/logind.conf.d",
        "usr/local/lib/systemd/logind.conf.d",
        "run/systemd/logind.conf.d",
        "etc/systemd/logind.conf.d",
    ] {
        let Ok(entries) = std::fs::read_dir(root.join(dir)) else { continue };
        for e in entries.flatten() {
            let name = e.file_name();
            if name.to_str().is_some_and(|n| n.ends_with(".conf")) {
                dropins.insert(name, e.path());
            }
        }
    }
    files.extend(dropins.into_values());
    files
}

/// The effective `RemoveIPC` and the file that set it (`None`: the default, yes).
fn remove_ipc_setting(files: &[PathBuf]) -> (bool, Option<PathBuf>) {
    let mut value = (true, None);
    for f in files {
        let Ok(text) = std::fs::read_to_string(f) else { continue };
        let mut in_login = false;
        for line in text.lines().map(str::trim) {
            if line.starts_with('[') {
                in_login = line == "[Login]";
            } else if let (true, Some((k, v))) = (in_login, line.split_once('=')) {
                if k.trim() == "RemoveIPC" {
                    let v = v.trim().to_ascii_lowercase();
                    value = (matches!(v.as_str(), "yes" | "true" | "1" | "on"), Some(f.clone()));
                }
            }
        }
    }
    value
}

/// The highest uid of a system user (`SYS_UID_MAX` in login.defs, 999 by default).
fn sys_uid_max(root: &Path) -> u32 {
    std::fs::read_to_string(root.join("etc/login.defs"))
        .ok()
        .and_then(|t| {
            t.lines().find_map(|l| {
                let mut w = l.split_whitespace();
                (w.next() == Some("SYS_UID_MAX")).then(|| w.next()?.parse().ok()).flatten()
            })
        })
        .unwrap_or(999)
}

fn remove_ipc(host: &Host<'_>, out: &mut Vec<Finding>) {
    const CHECK: &str = "remove-ipc";
    let files = logind_files(host.root);
    let logind =
        ["usr/lib/systemd/systemd-logind", "lib/systemd/systemd-logind"].iter().any(|p| host.root.join(p).exists());
    if files.is_empty() && !logind {
        out.push(finding(CHECK, Severity::Ok, "no systemd-logind here: RemoveIPC does not apply".into(), None));
        return;
    }
    let (on, from) = remove_ipc_setting(&files);
    let source = from.map_or("the default".to_string(), |f| f.display().to_string());
    if !on {
        out.push(finding(CHECK, Severity::Ok, format!("RemoveIPC=no ({source})"), None));
        return;
    }
    let max = sys_uid_max(host.root);
    let mut at_risk: BTreeMap<u32, Vec<&str>> = BTreeMap::new();
    for i in readable(host).filter(|i| i.uid > max) {
        at_risk.entry(i.uid).or_default().push(&i.name);
    }
    if at_risk.is_empty() {
        out.push(finding(
            CHECK,
            Severity::Warning,
            format!("RemoveIPC=yes ({source}); every object here belongs to a system user (uid <= {max}), which it spares"),
            Some("an object created by a login user would be removed when that user's last session ends: set RemoveIPC=no"),
        ));
        return;
    }
    let who: Vec<String> = at_risk.iter().map(|(uid, names)| format!("uid {uid}: {}", names.join(", "))).collect();
    out.push(finding(
        CHECK,
        Severity::Problem,
        format!(
            "RemoveIPC=yes ({source}): systemd-logind removes a user's /dev/shm objects when their last session ends; at risk: {}",
            who.join("; ")
        ),
        Some("put `[Login]` and `RemoveIPC=no` in /etc/systemd/logind.conf.d/shmstate.conf and restart systemd-logind, or run writers as system users"),
    ));
}

/// The owner of `/dev/shm/shmstate.<name><suffix>`, if it exists.
fn owner_of(name: &str, suffix: &str) -> Option<(u32, u32)> {
    std::fs::metadata(format!("/dev/shm/shmstate.{name}{suffix}")).ok().map(|m| (m.uid(), m.mode() & 0o777))
}

fn owners(host: &Host<'_>, out: &mut Vec<Finding>) {
    const CHECK: &str = "owners";
    let mut n = 0;
    for i in readable(host) {
        let data = (i.uid, i.mode & 0o777);
        for (suffix, what) in [(".readers", "reader table"), (".lock", "writer lock")] {
            if let Some((uid, _)) = owner_of(&i.name, suffix).filter(|(uid, _)| *uid != data.0) {
                n += 1;
                out.push(finding(
                    CHECK,
                    Severity::Warning,
                    format!("{}: its {what} belongs to uid {uid}, its data segment to uid {}", i.name, data.0),
                    Some("objects are created by one user: remove the object (`shmstate rm`) and let its writer create it again"),
                ));
            }
        }
        if data.1 & 0o002 != 0 {
            n += 1;
            out.push(finding(
                CHECK,
                Severity::Warning,
                format!("{}: the data segment is world-writable (mode {:04o})", i.name, data.1),
                Some("any local user can then corrupt snapshots (readers refuse them) or hold the writer off: use WriterOptions::mode 0o640 or 0o644"),
            ));
        }
    }
    if n == 0 {
        out.push(finding(
            CHECK,
            Severity::Ok,
            "every object's files have one owner and none is world-writable".into(),
            None,
        ));
    }
}

fn unreadable(host: &Host<'_>, out: &mut Vec<Finding>) {
    for (name, r) in host.objects {
        if let Err(e) = r {
            out.push(finding(
                "unreadable",
                Severity::Problem,
                format!("{name}: {e}"),
                Some(
                    "`shmstate inspect NAME` shows why; remove it with `shmstate rm NAME --force` once nobody needs it",
                ),
            ));
        }
    }
}

fn collectable(host: &Host<'_>, out: &mut Vec<Finding>) {
    let dead: Vec<&ObjectInfo> = readable(host).filter(|i| !i.writer_alive && i.live_readers() == 0).collect();
    if dead.is_empty() {
        return;
    }
    let bytes: u64 = dead.iter().map(|i| i.size).sum();
    let names: Vec<&str> = dead.iter().map(|i| i.name.as_str()).collect();
    out.push(finding(
        "unused",
        Severity::Warning,
        format!(
            "{} object(s) with a dead writer and no reader hold {}: {}",
            dead.len(),
            human_size(bytes),
            names.join(", ")
        ),
        Some("`shmstate gc` lists them and `shmstate gc --yes` removes them"),
    ));
}

fn namespaces(host: &Host<'_>, out: &mut Vec<Finding>) {
    for i in readable(host).filter(|i| i.writer_alive) {
        match i.writer_seen {
            shmstate::WriterSeen::Hidden => out.push(finding(
                "pid-namespace",
                Severity::Info,
                format!(
                    "{}: its writer runs in a PID namespace this one cannot see (pid {} there)",
                    i.name, i.writer_pid
                ),
                Some("liveness still works (locks cross namespaces); run `shmstate inspect` where the writer runs to see its process"),
            )),
            shmstate::WriterSeen::Pid(here) if here != i.writer_pid => out.push(finding(
                "pid-namespace",
                Severity::Info,
                format!("{}: its writer is pid {here} here and pid {} in its own PID namespace", i.name, i.writer_pid),
                None,
            )),
            _ => {}
        }
    }
}

/// This process's cgroup (v2) memory limit, if one is set.
fn cgroup_memory_max() -> Option<(u64, String)> {
    let cgroup = std::fs::read_to_string("/proc/self/cgroup").ok()?;
    let path = cgroup.lines().find_map(|l| l.strip_prefix("0::"))?.trim().to_string();
    let max = std::fs::read_to_string(format!("/sys/fs/cgroup{path}/memory.max")).ok()?;
    Some((max.trim().parse().ok()?, path))
}

fn cgroup_memory(host: &Host<'_>, out: &mut Vec<Finding>) {
    let _ = host;
    let Some((max, path)) = cgroup_memory_max() else { return };
    let used = shmstate_bytes();
    let (severity, advice) = if used > max / 2 {
        (
            Severity::Warning,
            Some(
                "shared-memory pages count against the memory limit of the cgroup that first touched them (a \
                 Kubernetes emptyDir of medium Memory counts against the pod's limit): readers holding old \
                 generations can get it OOM-killed; raise the limit or read with Reader::read_releasing",
            ),
        )
    } else {
        (Severity::Ok, None)
    };
    out.push(finding(
        "cgroup-memory",
        severity,
        format!("cgroup {path} may use {}; shmstate objects use {}", human_size(max), human_size(used)),
        advice,
    ));
}

/// Whether the kernel has `futex_waitv` (Linux 5.16): with no waiters it
/// answers EINVAL, without the syscall ENOSYS.
fn has_futex_waitv() -> bool {
    const SYS_FUTEX_WAITV: libc::c_long = 449;
    // SAFETY: a null vector of length 0 is never dereferenced; the call only
    // validates its arguments.
    let r = unsafe { libc::syscall(SYS_FUTEX_WAITV, std::ptr::null::<u8>(), 0u32, 0u32, std::ptr::null::<u8>(), 0) };
    !(r == -1 && std::io::Error::last_os_error().raw_os_error() == Some(libc::ENOSYS))
}

/// Whether open-file-description locks work on /dev/shm (Linux 3.15).
fn has_ofd_locks() -> bool {
    let Ok(f) = tempfile_in_shm() else { return false };
    let mut fl: libc::flock = unsafe_zeroed_flock();
    fl.l_type = libc::F_WRLCK as libc::c_short;
    fl.l_whence = libc::SEEK_SET as libc::c_short;
    use std::os::fd::AsRawFd as _;
    // SAFETY: `fl` is a valid flock struct for the duration of the call and
    // `f` an open descriptor.
    let r = unsafe { libc::fcntl(f.as_raw_fd(), libc::F_OFD_GETLK, &mut fl) };
    r == 0
}

fn unsafe_zeroed_flock() -> libc::flock {
    // SAFETY: `flock` is a plain C struct; all-zero is a valid value.
    unsafe { std::mem::zeroed() }
}

/// An unlinked file in /dev/shm, for probing.
fn tempfile_in_shm() -> std::io::Result<std::fs::File> {
    let path = format!("/dev/shm/.shmstate-doctor-{}", std::process::id());
    let f = std::fs::OpenOptions::new().read(true).write(true).create_new(true).open(&path)?;
    let _ = std::fs::remove_file(&path);
    Ok(f)
}

fn kernel(out: &mut Vec<Finding>) {
    let waitv = has_futex_waitv();
    let ofd = has_ofd_locks();
    let mut line = String::new();
    let _ = write!(
        line,
        "futex_waitv: {}; OFD locks: {}",
        if waitv { "yes" } else { "no" },
        if ofd { "yes" } else { "no" }
    );
    let (severity, advice) = match (ofd, waitv) {
        (false, _) => (Severity::Problem, Some("shmstate needs OFD locks (Linux 3.15 or later) for liveness and pins")),
        (true, false) => (
            Severity::Warning,
            Some("without futex_waitv (Linux 5.16) a wait that follows several objects polls them in turn"),
        ),
        (true, true) => (Severity::Ok, None),
    };
    out.push(finding("kernel", severity, line, advice));
}

/// The findings as text: one line each, then the advice indented under it.
pub fn text(findings: &[Finding]) -> String {
    let mut s = String::new();
    for f in findings {
        let _ = writeln!(s, "{:<8} {:<14} {}", f.severity.as_str(), f.check, f.message);
        if let Some(a) = &f.advice {
            let _ = writeln!(s, "{:<8} {:<14}   -> {a}", "", "");
        }
    }
    let problems = findings.iter().filter(|f| f.severity == Severity::Problem).count();
    let warnings = findings.iter().filter(|f| f.severity == Severity::Warning).count();
    let _ = writeln!(s, "{problems} problem(s), {warnings} warning(s)");
    s
}

/// The findings as a JSON array.
pub fn json(findings: &[Finding]) -> Value {
    Value::Array(
        findings
            .iter()
            .map(|f| json!({"check": f.check, "severity": f.severity.as_str(), "message": f.message, "advice": f.advice}))
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remove_ipc_later_files_win_and_default_is_yes() {
        let dir = std::env::temp_dir().join(format!("shmstate-doctor-unit-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("etc/systemd/logind.conf.d")).unwrap();
        std::fs::create_dir_all(dir.join("run/systemd/logind.conf.d")).unwrap();
        assert_eq!(remove_ipc_setting(&logind_files(&dir)), (true, None));
        std::fs::write(dir.join("etc/systemd/logind.conf"), "[Login]\n#RemoveIPC=no\nRemoveIPC=no\n").unwrap();
        assert!(!remove_ipc_setting(&logind_files(&dir)).0);
        // A drop-in overrides the main file; outside [Login] nothing counts.
        std::fs::write(dir.join("run/systemd/logind.conf.d/10-a.conf"), "[Login]\nRemoveIPC=yes\n").unwrap();
        std::fs::write(dir.join("etc/systemd/logind.conf.d/20-b.conf"), "[Other]\nRemoveIPC=no\n").unwrap();
        assert!(remove_ipc_setting(&logind_files(&dir)).0);
        // Same file name in /etc hides the one in /run.
        std::fs::write(dir.join("etc/systemd/logind.conf.d/10-a.conf"), "[Login]\nRemoveIPC=no\n").unwrap();
        assert!(!remove_ipc_setting(&logind_files(&dir)).0);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn kernel_probes_answer() {
        // This machine runs a kernel with both (the CI machines too); a probe
        // that misreads its errno would say no.
        assert!(has_ofd_locks());
        assert!(has_futex_waitv());
    }
}
