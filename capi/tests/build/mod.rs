//! Compiles the C and C++ test programs against `libshmstate.a` (built by
//! cargo with this package), once per test binary, with AddressSanitizer and
//! UBSan: any invalid access or undefined behaviour in C ends the program.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// The directory cargo puts `libshmstate.a` in: the test binary is in its `deps/`.
pub fn lib_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    exe.parent().and_then(Path::parent).expect("target/<profile>/deps").to_path_buf()
}

/// Builds `libshmstate.a` (cargo does not rebuild a package's `staticlib`
/// for its integration tests), with the profile of this test binary.
pub fn build_lib() -> PathBuf {
    static LIB: OnceLock<PathBuf> = OnceLock::new();
    LIB.get_or_init(|| {
        let dir = lib_dir();
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let mut build = Command::new(cargo);
        build.args(["build", "-p", "shmstate-capi", "--lib"]);
        if dir.file_name().is_some_and(|p| p == "release") {
            build.arg("--release");
        }
        let status = build.status().expect("running cargo build");
        assert!(status.success(), "cargo build -p shmstate-capi failed");
        dir.join("libshmstate.a")
    })
    .clone()
}

fn manifest() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Compiles `source` with `compiler` into the test's scratch directory,
/// linked with `libshmstate.a`, or with `libshmstate.so` if `shared`.
pub fn compile(compiler: &str, source: &str, std: &str, out: &str, shared: bool) -> PathBuf {
    let lib = build_lib();
    let link: Vec<std::ffi::OsString> = if shared {
        let dir = lib.parent().unwrap().display().to_string();
        vec![format!("-L{dir}").into(), "-lshmstate".into(), format!("-Wl,-rpath,{dir}").into()]
    } else {
        vec![lib.into()]
    };
    // Valgrind cannot run sanitized programs: its builds go without.
    let (sanitize, out): (&[&str], String) = if under_valgrind() {
        (&[], format!("{out}-valgrind"))
    } else {
        (&["-fsanitize=address,undefined", "-fno-sanitize-recover=all", "-fno-omit-frame-pointer"], out.into())
    };
    let exe = Path::new(env!("CARGO_TARGET_TMPDIR")).join(out);
    let status = Command::new(compiler)
        .arg(std)
        .args(["-Wall", "-Wextra", "-Werror", "-g", "-O1"])
        .args(sanitize)
        .arg("-I")
        .arg(manifest().join("include"))
        .arg(manifest().join(source))
        .args(&link)
        .args(["-lpthread", "-ldl", "-lm", "-lrt", "-lutil", "-lgcc_s"])
        .arg("-o")
        .arg(&exe)
        .status()
        .unwrap_or_else(|e| panic!("running {compiler}: {e}"));
    assert!(status.success(), "{compiler} failed on {source}");
    exe
}

/// `SHMSTATE_CAPI_VALGRIND=1`: the C and C++ programs are built without
/// sanitizers and run under valgrind's memcheck (scripts/capi-valgrind.sh).
pub fn under_valgrind() -> bool {
    std::env::var_os("SHMSTATE_CAPI_VALGRIND").is_some_and(|v| v == "1")
}

/// A command running `program`, under valgrind if asked: any memcheck error
/// or definite leak makes it exit with 99.
pub fn command(program: &Path) -> Command {
    if !under_valgrind() {
        return Command::new(program);
    }
    let mut c = Command::new("valgrind");
    c.args([
        "-q",
        "--error-exitcode=99",
        "--leak-check=full",
        "--errors-for-leak-kinds=definite",
        "--show-possibly-lost=no",
    ])
    .arg(program);
    c
}

pub fn c_reader() -> PathBuf {
    static EXE: OnceLock<PathBuf> = OnceLock::new();
    EXE.get_or_init(|| compile("cc", "tests/c/reader.c", "-std=c11", "c_reader", false)).clone()
}

/// The same program linked with `libshmstate.so`.
pub fn c_reader_shared() -> PathBuf {
    static EXE: OnceLock<PathBuf> = OnceLock::new();
    EXE.get_or_init(|| compile("cc", "tests/c/reader.c", "-std=c11", "c_reader_shared", true)).clone()
}

pub fn cpp_reader() -> PathBuf {
    static EXE: OnceLock<PathBuf> = OnceLock::new();
    EXE.get_or_init(|| compile("c++", "tests/cpp/reader.cpp", "-std=c++17", "cpp_reader", false)).clone()
}
