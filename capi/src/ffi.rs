//! The exported functions: argument checks, the error boundary, and the
//! calls into [`Reader`] and [`At`]. The contract of each is in
//! `include/shmstate.h` and docs/C_API.md.
//!
//! # Safety
//! Every `unsafe` block of the library but three (reader.rs, notify.rs) is here, in the few
//! helpers that turn C's pointers into Rust references: each relies on the
//! caller keeping the header's contract (a pointer is NULL or valid for what
//! the header says; a handle is not used after it is closed; one thread at a
//! time uses a reader). NULL is always checked and refused; what cannot be
//! checked (a dangling pointer) is the caller's part, as in any C library.
//!
//! The `unsafe extern "C"` functions' `# Safety` sections name which of these
//! rules (the header's, for C callers) their arguments follow:
//! - **R**: `reader` is NULL or a reader from `shmstate_reader_open` that is
//!   not closed, used by no other thread during the call;
//! - **S**: `snap` is NULL or the snapshot a reader keeping **R** returned;
//! - **V**: `v` is NULL or points to a readable `shmstate_value` whose
//!   `snapshot` keeps **S** (a value of a released snapshot is refused);
//! - **O**: every output pointer is NULL (where the header allows it) or
//!   valid for writing one value of its type;
//! - **T**: every string is NULL or NUL-terminated, and `(key, key_len)` is
//!   `key_len` readable bytes, unmodified during the call;
//! - **W**: `writer` is NULL or a writer from `shmstate_writer_open` that is
//!   not closed, used by no other thread during the call.
#![allow(unsafe_code, non_camel_case_types)]

use std::ffi::{c_char, c_int, c_void, CStr};
use std::time::Duration;

use shmstate_core::Generation;

use crate::error::{self, guard, guard_value, Code, Error, Result};
use crate::path::{self, Step};
use crate::reader::{Options, Reader};
use crate::value::{kind, At, Key};
use crate::writer::Writer;

/// The ABI's version (`SHMSTATE_ABI_VERSION`): bumped on any incompatible
/// change of a function, a struct or a code.
pub const ABI_VERSION: u32 = 1;
/// `shmstate_open_options.version` this library knows.
pub const OPEN_OPTIONS_VERSION: u32 = 1;
pub const OPEN_FOLLOW: u32 = 1;
pub const OPEN_WAIT_FOR_WRITER: u32 = 2;

/// Opaque to C: a [`Reader`].
pub struct shmstate_reader {
    _private: [u8; 0],
}

/// Opaque to C: a [`Writer`].
pub struct shmstate_writer {
    _private: [u8; 0],
}

/// Opaque to C: the snapshot a reader holds (the same object as the reader).
pub struct shmstate_snapshot {
    _private: [u8; 0],
}

/// A value inside a held snapshot: small, copied by value, never freed.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct shmstate_value {
    pub snapshot: *const shmstate_snapshot,
    pub at: u64,
    pub type_index: u32,
    pub epoch: u32,
}

/// `shmstate_open_options`.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct shmstate_open_options {
    pub version: u32,
    pub flags: u32,
    pub init_timeout_ns: u64,
    pub writer_grace_ns: u64,
    pub wait_for_writer_ns: u64,
}

const DEFAULTS: shmstate_open_options = shmstate_open_options {
    version: OPEN_OPTIONS_VERSION,
    flags: 0,
    init_timeout_ns: 1_000_000_000,
    writer_grace_ns: 3_000_000_000,
    wait_for_writer_ns: 0,
};

// ---- pointer helpers (the crate's unsafe, each with its contract) ----

#[cold]
pub(crate) fn null(what: &str) -> Error {
    Error::new(error::INVALID_ARGUMENT, format!("{what} is NULL"))
}

/// Writes `v` through a C out-pointer.
pub(crate) fn put<T>(out: *mut T, v: T, what: &str) -> Result<()> {
    if out.is_null() {
        return Err(null(what));
    }
    // SAFETY:
    // - `out` is not NULL (checked) and, by the header's contract, points to a
    //   writable, aligned `T` owned by the caller;
    // - `T` is `Copy` data (integers, pointers, `shmstate_value`): no old
    //   value needs dropping.
    #[allow(unsafe_code)]
    unsafe {
        out.write(v)
    };
    Ok(())
}

/// A NUL-terminated string from C (without the NUL), borrowed for the call.
fn c_bytes<'a>(p: *const c_char, what: &str) -> Result<&'a [u8]> {
    if p.is_null() {
        return Err(null(what));
    }
    // SAFETY: not NULL (checked); the header requires a NUL-terminated string
    // that stays valid and unmodified for the duration of the call, which is
    // all `'a` is used for (callers never keep it).
    #[allow(unsafe_code)]
    let c = unsafe { CStr::from_ptr(p) };
    Ok(c.to_bytes())
}

/// A NUL-terminated UTF-8 string from C, borrowed for the call.
pub(crate) fn text<'a>(p: *const c_char, what: &str) -> Result<&'a str> {
    std::str::from_utf8(c_bytes(p, what)?)
        .map_err(|_| Error::new(error::INVALID_ARGUMENT, format!("{what} is not UTF-8")))
}

/// `len` bytes from C, borrowed for the call, as UTF-8.
pub(crate) fn text_n<'a>(p: *const c_char, len: usize, what: &str) -> Result<&'a str> {
    if len == 0 {
        return Ok("");
    }
    if p.is_null() {
        return Err(null(what));
    }
    // SAFETY: not NULL (checked); the header requires `len` readable bytes at
    // `p`, unmodified for the duration of the call (all `'a` is used for).
    #[allow(unsafe_code)]
    let bytes = unsafe { std::slice::from_raw_parts(p.cast::<u8>(), len) };
    std::str::from_utf8(bytes).map_err(|_| Error::new(error::INVALID_ARGUMENT, format!("{what} is not UTF-8")))
}

fn reader_mut<'a>(r: *mut shmstate_reader) -> Result<&'a mut Reader> {
    if r.is_null() {
        return Err(null("the reader"));
    }
    // SAFETY: not NULL (checked); a `shmstate_reader *` comes from
    // `shmstate_reader_open` (a leaked `Box<Reader>`) and is not closed yet,
    // and the header allows one thread at a time per reader, so no other
    // reference to it lives during the call.
    #[allow(unsafe_code)]
    Ok(unsafe { &mut *r.cast::<Reader>() })
}

fn reader_ref<'a>(r: *const shmstate_reader) -> Result<&'a Reader> {
    if r.is_null() {
        return Err(null("the reader"));
    }
    // SAFETY: as in `reader_mut`; shared only.
    #[allow(unsafe_code)]
    Ok(unsafe { &*r.cast::<Reader>() })
}

fn snapshot<'a>(s: *const shmstate_snapshot) -> Result<&'a Reader> {
    reader_ref(s.cast())
}

/// The value `v` names, refused if it belongs to a snapshot no longer held.
fn value<'a>(v: *const shmstate_value) -> Result<At<'a>> {
    if v.is_null() {
        return Err(null("the value"));
    }
    // SAFETY: not NULL (checked); the header requires a readable
    // `shmstate_value`, which is plain data (any bit pattern is checked below).
    #[allow(unsafe_code)]
    let v = unsafe { v.read() };
    let reader = snapshot(v.snapshot)?;
    if reader.epoch() != v.epoch || reader.snapshot().is_err() {
        return Err(Error::new(
            error::STALE_VALUE,
            format!("{}: the value belongs to a snapshot that was released or replaced by a newer read", reader.name()),
        ));
    }
    let at = usize::try_from(v.at).map_err(|_| Error::new(error::INVALID_ARGUMENT, "value offset overflows"))?;
    Ok(At { reader, node: shmstate_core::dynamic::Node { ty: v.type_index, at } })
}

pub(crate) fn to_c(a: &At<'_>) -> shmstate_value {
    shmstate_value {
        snapshot: (a.reader as *const Reader).cast(),
        at: a.node.at as u64,
        type_index: a.node.ty,
        epoch: a.reader.epoch(),
    }
}

fn put_value(out: *mut shmstate_value, a: &At<'_>) -> Result<()> {
    put(out, to_c(a), "the output value")
}

fn put_text(data: *mut *const c_char, len: *mut usize, s: &str) -> Result<()> {
    if len.is_null() {
        return Err(null("the length output"));
    }
    put(data, s.as_ptr().cast(), "the text output")?;
    put(len, s.len(), "the length output")
}

fn walk<'a>(mut at: At<'a>, path: &str) -> Result<At<'a>> {
    for step in path::parse(path)? {
        at = match &step {
            Step::Field(name) => at.field(name)?,
            Step::Index(_) if at.kind()? == kind::MAP => at.lookup(&step.key().expect("an index is a key"))?,
            Step::Index(i) => {
                let i = u64::try_from(*i).map_err(|_| {
                    Error::new(error::NO_SUCH_FIELD, format!("{}: index {i} is negative", at.reader.name()))
                })?;
                at.index(i)?
            }
            Step::Key(_) => at.lookup(&step.key().expect("a key"))?,
        };
    }
    Ok(at)
}

/// `path` from the root of the held snapshot; a path walked before in the
/// same snapshot is one hash lookup.
fn from_root<'a>(snap: *const shmstate_snapshot, path: *const c_char) -> Result<At<'a>> {
    let reader = snapshot(snap)?;
    reader.snapshot()?;
    let bytes = c_bytes(path, "the path")?;
    if let Some(node) = reader.path_node(bytes) {
        return Ok(At { reader, node });
    }
    let text = std::str::from_utf8(bytes).map_err(|_| Error::new(error::INVALID_ARGUMENT, "the path is not UTF-8"))?;
    let at = walk(At::root(reader)?, text)?;
    reader.remember_path(bytes, at.node);
    Ok(at)
}

fn duration(ns: u64) -> Duration {
    Duration::from_nanos(ns)
}

// ---- library ----

/// `shmstate_abi_version` (shmstate.h): takes no pointer, safe to call.
#[no_mangle]
pub extern "C" fn shmstate_abi_version() -> u32 {
    ABI_VERSION
}

/// `shmstate_version` (shmstate.h): takes no pointer, safe to call.
#[no_mangle]
pub extern "C" fn shmstate_version() -> *const c_char {
    concat!(env!("CARGO_PKG_VERSION"), "\0").as_ptr().cast()
}

/// `shmstate_error_name` (shmstate.h): takes no pointer, safe to call.
#[no_mangle]
pub extern "C" fn shmstate_error_name(code: c_int) -> *const c_char {
    error::name_of(code)
}

/// `shmstate_last_error_message` (shmstate.h): takes no pointer, safe to call.
#[no_mangle]
pub extern "C" fn shmstate_last_error_message() -> *const c_char {
    guard_value(c"".as_ptr(), error::last_message_ptr)
}

// ---- readers ----

/// `shmstate_open_options_init` (shmstate.h).
///
/// # Safety
/// O (see the module docs).
#[no_mangle]
pub unsafe extern "C" fn shmstate_open_options_init(options: *mut shmstate_open_options) -> Code {
    guard(|| put(options, DEFAULTS, "the options"))
}

/// `shmstate_reader_open` (shmstate.h).
///
/// # Safety
/// T (`name`), O; `options` is NULL or a readable `shmstate_open_options` (see the module docs).
#[no_mangle]
pub unsafe extern "C" fn shmstate_reader_open(
    name: *const c_char,
    options: *const shmstate_open_options,
    out: *mut *mut shmstate_reader,
) -> Code {
    guard(|| {
        if out.is_null() {
            return Err(null("the output reader"));
        }
        put(out, std::ptr::null_mut(), "the output reader")?;
        let name = text(name, "the name")?;
        let o = if options.is_null() {
            DEFAULTS
        } else {
            // SAFETY: not NULL (checked); the header requires a readable,
            // initialised `shmstate_open_options` (plain integers).
            #[allow(unsafe_code)]
            unsafe {
                options.read()
            }
        };
        if o.version != OPEN_OPTIONS_VERSION {
            let what = format!("shmstate_open_options.version is {}, this library knows {OPEN_OPTIONS_VERSION}: initialise it with shmstate_open_options_init", o.version);
            return Err(Error::new(error::INVALID_ARGUMENT, what));
        }
        if o.flags & !(OPEN_FOLLOW | OPEN_WAIT_FOR_WRITER) != 0 {
            return Err(Error::new(error::INVALID_ARGUMENT, format!("unknown open flags {:#x}", o.flags)));
        }
        let options = Options {
            follow: o.flags & OPEN_FOLLOW != 0,
            init_timeout: duration(o.init_timeout_ns),
            writer_grace: duration(o.writer_grace_ns),
            wait_for_writer: (o.flags & OPEN_WAIT_FOR_WRITER != 0).then(|| duration(o.wait_for_writer_ns)),
        };
        let reader = Box::new(Reader::open(name, options)?);
        put(out, Box::into_raw(reader).cast(), "the output reader")
    })
}

/// `shmstate_reader_close` (shmstate.h).
///
/// # Safety
/// R, and the reader is not used again (nor its snapshot and values) (see the module docs).
#[no_mangle]
pub unsafe extern "C" fn shmstate_reader_close(reader: *mut shmstate_reader) {
    guard_value((), || {
        if !reader.is_null() {
            // SAFETY: not NULL; a reader comes from `Box::into_raw` in
            // `shmstate_reader_open` and, by the header's contract, is closed
            // once and not used afterwards (its snapshot and values neither).
            #[allow(unsafe_code)]
            drop(unsafe { Box::from_raw(reader.cast::<Reader>()) });
        }
    })
}

/// `shmstate_reader_generation` (shmstate.h).
///
/// # Safety
/// R (see the module docs).
#[no_mangle]
pub unsafe extern "C" fn shmstate_reader_generation(reader: *const shmstate_reader) -> u64 {
    guard_value(0, || reader_ref(reader).map_or(0, |r| r.latest().get()))
}

/// `shmstate_reader_schema` (shmstate.h).
///
/// # Safety
/// R, O (see the module docs).
#[no_mangle]
pub unsafe extern "C" fn shmstate_reader_schema(
    reader: *mut shmstate_reader,
    text: *mut *const c_char,
    len: *mut usize,
) -> Code {
    guard(|| {
        let r = reader_mut(reader)?;
        put_text(text, len, r.schema_text())
    })
}

/// `shmstate_read` (shmstate.h).
///
/// # Safety
/// R, O (see the module docs).
#[no_mangle]
pub unsafe extern "C" fn shmstate_read(reader: *mut shmstate_reader, out: *mut *const shmstate_snapshot) -> Code {
    guard(|| {
        // The fast path (the held snapshot is the latest) is inline here, with
        // no argument error to format; everything else is `read_slow`.
        if !reader.is_null() && !out.is_null() {
            let r = reader_mut(reader)?;
            if r.holds_latest() {
                return put(out, reader.cast_const().cast(), "the output snapshot");
            }
        }
        read_slow(reader, out)
    })
}

#[cold]
#[inline(never)]
fn read_slow(reader: *mut shmstate_reader, out: *mut *const shmstate_snapshot) -> Result<()> {
    let r = reader_mut(reader)?;
    if out.is_null() {
        return Err(null("the output snapshot"));
    }
    let read = r.read();
    let snap = if read.is_ok() { reader.cast_const().cast() } else { std::ptr::null() };
    put(out, snap, "the output snapshot")?;
    read
}

/// `shmstate_release` (shmstate.h).
///
/// # Safety
/// R (see the module docs).
#[no_mangle]
pub unsafe extern "C" fn shmstate_release(reader: *mut shmstate_reader) {
    guard_value((), || {
        if let Ok(r) = reader_mut(reader) {
            r.release();
        }
    })
}

/// `shmstate_wait_newer` (shmstate.h).
///
/// # Safety
/// R, O (see the module docs).
#[no_mangle]
pub unsafe extern "C" fn shmstate_wait_newer(
    reader: *mut shmstate_reader,
    than: u64,
    timeout_ns: u64,
    next: *mut u64,
) -> Code {
    guard(|| {
        let r = reader_mut(reader)?;
        let g = r.wait_newer(Generation::new(than), duration(timeout_ns))?;
        if next.is_null() {
            return Ok(());
        }
        put(next, g.get(), "the output generation")
    })
}

/// `shmstate_reader_fd` (shmstate.h).
///
/// # Safety
/// R, O (see the module docs).
#[no_mangle]
pub unsafe extern "C" fn shmstate_reader_fd(reader: *mut shmstate_reader, fd: *mut c_int) -> Code {
    guard(|| {
        let r = reader_mut(reader)?;
        put(fd, r.fd()?, "the output fd")
    })
}

// ---- snapshots ----

/// `shmstate_snapshot_generation` (shmstate.h).
///
/// # Safety
/// S (see the module docs).
#[no_mangle]
pub unsafe extern "C" fn shmstate_snapshot_generation(snap: *const shmstate_snapshot) -> u64 {
    guard_value(0, || snapshot(snap).and_then(|r| r.snapshot()).map_or(0, |(g, _)| g.get()))
}

/// `shmstate_snapshot_bytes` (shmstate.h).
///
/// # Safety
/// S, O (see the module docs).
#[no_mangle]
pub unsafe extern "C" fn shmstate_snapshot_bytes(
    snap: *const shmstate_snapshot,
    data: *mut *const u8,
    len: *mut usize,
) -> Code {
    guard(|| {
        let (_, bytes) = snapshot(snap)?.snapshot()?;
        if len.is_null() {
            return Err(null("the length output"));
        }
        put(data, bytes.as_ptr(), "the data output")?;
        put(len, bytes.len(), "the length output")
    })
}

/// `shmstate_root` (shmstate.h).
///
/// # Safety
/// S, O (see the module docs).
#[no_mangle]
pub unsafe extern "C" fn shmstate_root(snap: *const shmstate_snapshot, out: *mut shmstate_value) -> Code {
    guard(|| put_value(out, &At::root(snapshot(snap)?)?))
}

/// `shmstate_get` (shmstate.h).
///
/// # Safety
/// S, T, O (see the module docs).
#[no_mangle]
pub unsafe extern "C" fn shmstate_get(
    snap: *const shmstate_snapshot,
    path: *const c_char,
    out: *mut shmstate_value,
) -> Code {
    guard(|| put_value(out, &from_root(snap, path)?))
}

/// Defines `shmstate_get_<T>(snap, path, &out)`: `shmstate_get` then the leaf.
macro_rules! get_leaf {
    ($name:ident, $ty:ty, $method:ident) => {
        /// `shmstate_get_<number>` (shmstate.h).
        ///
        /// # Safety
        /// S, T, O (see the module docs).
        #[no_mangle]
        pub unsafe extern "C" fn $name(snap: *const shmstate_snapshot, path: *const c_char, out: *mut $ty) -> Code {
            guard(|| put(out, from_root(snap, path)?.$method()?, "the output"))
        }
    };
}

get_leaf!(shmstate_get_u64, u64, u64);
get_leaf!(shmstate_get_i64, i64, i64);
get_leaf!(shmstate_get_f64, f64, f64);

/// `shmstate_get_str` (shmstate.h).
///
/// # Safety
/// S, T, O (see the module docs).
#[no_mangle]
pub unsafe extern "C" fn shmstate_get_str(
    snap: *const shmstate_snapshot,
    path: *const c_char,
    data: *mut *const c_char,
    len: *mut usize,
) -> Code {
    guard(|| {
        let (p, n) = from_root(snap, path)?.str()?;
        if len.is_null() {
            return Err(null("the length output"));
        }
        put(data, p.cast(), "the text output")?;
        put(len, n, "the length output")
    })
}

// ---- values ----

/// `shmstate_value_get` (shmstate.h).
///
/// # Safety
/// V, T, O (see the module docs).
#[no_mangle]
pub unsafe extern "C" fn shmstate_value_get(
    v: *const shmstate_value,
    path: *const c_char,
    out: *mut shmstate_value,
) -> Code {
    guard(|| put_value(out, &walk(value(v)?, text(path, "the path")?)?))
}

/// `shmstate_value_kind` (shmstate.h).
///
/// # Safety
/// V, O (see the module docs).
#[no_mangle]
pub unsafe extern "C" fn shmstate_value_kind(v: *const shmstate_value, out: *mut c_int) -> Code {
    guard(|| put(out, value(v)?.kind()?, "the output kind"))
}

/// `shmstate_value_type_name` (shmstate.h).
///
/// # Safety
/// V, O (see the module docs).
#[no_mangle]
pub unsafe extern "C" fn shmstate_value_type_name(
    v: *const shmstate_value,
    name: *mut *const c_char,
    len: *mut usize,
) -> Code {
    guard(|| put_text(name, len, &value(v)?.ty()?.name))
}

/// `shmstate_value_len` (shmstate.h).
///
/// # Safety
/// V, O (see the module docs).
#[no_mangle]
pub unsafe extern "C" fn shmstate_value_len(v: *const shmstate_value, out: *mut u64) -> Code {
    guard(|| put(out, value(v)?.len()?, "the output length"))
}

/// `shmstate_value_field` (shmstate.h).
///
/// # Safety
/// V, T, O (see the module docs).
#[no_mangle]
pub unsafe extern "C" fn shmstate_value_field(
    v: *const shmstate_value,
    name: *const c_char,
    out: *mut shmstate_value,
) -> Code {
    guard(|| put_value(out, &value(v)?.field(text(name, "the field name")?)?))
}

/// `shmstate_value_index` (shmstate.h).
///
/// # Safety
/// V, O (see the module docs).
#[no_mangle]
pub unsafe extern "C" fn shmstate_value_index(v: *const shmstate_value, i: u64, out: *mut shmstate_value) -> Code {
    guard(|| put_value(out, &value(v)?.index(i)?))
}

/// `shmstate_value_field_name` (shmstate.h).
///
/// # Safety
/// V, O (see the module docs).
#[no_mangle]
pub unsafe extern "C" fn shmstate_value_field_name(
    v: *const shmstate_value,
    i: u64,
    name: *mut *const c_char,
    len: *mut usize,
) -> Code {
    guard(|| put_text(name, len, value(v)?.field_name(i)?))
}

/// `shmstate_value_variant` (shmstate.h).
///
/// # Safety
/// V, O (see the module docs).
#[no_mangle]
pub unsafe extern "C" fn shmstate_value_variant(
    v: *const shmstate_value,
    name: *mut *const c_char,
    len: *mut usize,
) -> Code {
    guard(|| put_text(name, len, value(v)?.variant_name()?))
}

/// `shmstate_value_option` (shmstate.h).
///
/// # Safety
/// V, O (see the module docs).
#[no_mangle]
pub unsafe extern "C" fn shmstate_value_option(
    v: *const shmstate_value,
    is_some: *mut c_int,
    inner: *mut shmstate_value,
) -> Code {
    guard(|| match value(v)?.option()? {
        Some(a) => {
            put(is_some, 1, "the output flag")?;
            if inner.is_null() {
                return Ok(());
            }
            put_value(inner, &a)
        }
        None => put(is_some, 0, "the output flag"),
    })
}

/// `shmstate_value_entry` (shmstate.h).
///
/// # Safety
/// V, O (see the module docs).
#[no_mangle]
pub unsafe extern "C" fn shmstate_value_entry(
    v: *const shmstate_value,
    i: u64,
    key: *mut shmstate_value,
    val: *mut shmstate_value,
) -> Code {
    guard(|| {
        let (k, x) = value(v)?.entry(i)?;
        put_value(key, &k)?;
        put_value(val, &x)
    })
}

/// `shmstate_value_lookup_str` (shmstate.h).
///
/// # Safety
/// V, T, O (see the module docs).
#[no_mangle]
pub unsafe extern "C" fn shmstate_value_lookup_str(
    v: *const shmstate_value,
    key: *const c_char,
    key_len: usize,
    out: *mut shmstate_value,
) -> Code {
    guard(|| put_value(out, &value(v)?.lookup(&Key::Str(text_n(key, key_len, "the key")?))?))
}

/// `shmstate_value_lookup_u64` (shmstate.h).
///
/// # Safety
/// V, O (see the module docs).
#[no_mangle]
pub unsafe extern "C" fn shmstate_value_lookup_u64(
    v: *const shmstate_value,
    key: u64,
    out: *mut shmstate_value,
) -> Code {
    guard(|| put_value(out, &value(v)?.lookup(&Key::U64(key))?))
}

/// `shmstate_value_lookup_i64` (shmstate.h).
///
/// # Safety
/// V, O (see the module docs).
#[no_mangle]
pub unsafe extern "C" fn shmstate_value_lookup_i64(
    v: *const shmstate_value,
    key: i64,
    out: *mut shmstate_value,
) -> Code {
    guard(|| put_value(out, &value(v)?.lookup(&Key::I64(key))?))
}

/// Defines `shmstate_value_<T>(v, &out)`.
macro_rules! value_leaf {
    ($name:ident, $ty:ty, $method:ident) => {
        /// `shmstate_value_<leaf>` (shmstate.h).
        ///
        /// # Safety
        /// V, O (see the module docs).
        #[no_mangle]
        pub unsafe extern "C" fn $name(v: *const shmstate_value, out: *mut $ty) -> Code {
            guard(|| put(out, value(v)?.$method()?, "the output"))
        }
    };
}

value_leaf!(shmstate_value_u64, u64, u64);
value_leaf!(shmstate_value_i64, i64, i64);
value_leaf!(shmstate_value_f64, f64, f64);
value_leaf!(shmstate_value_char, u32, char);

/// `shmstate_value_bool` (shmstate.h).
///
/// # Safety
/// V, O (see the module docs).
#[no_mangle]
pub unsafe extern "C" fn shmstate_value_bool(v: *const shmstate_value, out: *mut c_int) -> Code {
    guard(|| put(out, c_int::from(value(v)?.bool()?), "the output"))
}

/// `shmstate_value_str` (shmstate.h).
///
/// # Safety
/// V, O (see the module docs).
#[no_mangle]
pub unsafe extern "C" fn shmstate_value_str(
    v: *const shmstate_value,
    data: *mut *const c_char,
    len: *mut usize,
) -> Code {
    guard(|| {
        let (p, n) = value(v)?.str()?;
        if len.is_null() {
            return Err(null("the length output"));
        }
        put(data, p.cast(), "the text output")?;
        put(len, n, "the length output")
    })
}

/// `shmstate_value_numbers` (shmstate.h).
///
/// # Safety
/// V, O (see the module docs).
#[no_mangle]
pub unsafe extern "C" fn shmstate_value_numbers(
    v: *const shmstate_value,
    number_type: c_int,
    data: *mut *const c_void,
    len: *mut u64,
) -> Code {
    guard(|| {
        let (p, n) = value(v)?.numbers(number_type)?;
        if len.is_null() {
            return Err(null("the length output"));
        }
        put(data, p.cast(), "the data output")?;
        put(len, n, "the length output")
    })
}

// ---- writers ----

fn writer_mut<'a>(w: *mut shmstate_writer) -> Result<&'a mut Writer> {
    if w.is_null() {
        return Err(null("the writer"));
    }
    // SAFETY: not NULL (checked); a `shmstate_writer *` comes from
    // `shmstate_writer_open` (a leaked `Box<Writer>`) and is not closed yet,
    // and the header allows one thread at a time per writer.
    Ok(unsafe { &mut *w.cast::<Writer>() })
}

/// `shmstate_writer_open` (shmstate.h).
///
/// # Safety
/// T (`name`, `schema_json`, which may be NULL), O (see the module docs).
#[no_mangle]
pub unsafe extern "C" fn shmstate_writer_open(
    name: *const c_char,
    schema_json: *const c_char,
    out: *mut *mut shmstate_writer,
) -> Code {
    guard(|| {
        put(out, std::ptr::null_mut(), "the output writer")?;
        let name = text(name, "the name")?;
        let schema = if schema_json.is_null() { None } else { Some(text(schema_json, "the schema")?) };
        let writer = Box::new(Writer::open(name, schema)?);
        put(out, Box::into_raw(writer).cast(), "the output writer")
    })
}

/// `shmstate_writer_close` (shmstate.h).
///
/// # Safety
/// W, and the writer is not used again (see the module docs).
#[no_mangle]
pub unsafe extern "C" fn shmstate_writer_close(writer: *mut shmstate_writer) {
    guard_value((), || {
        if !writer.is_null() {
            // SAFETY: not NULL; a writer comes from `Box::into_raw` in
            // `shmstate_writer_open` and, by the header's contract, is closed
            // once and not used afterwards.
            drop(unsafe { Box::from_raw(writer.cast::<Writer>()) });
        }
    })
}

/// `shmstate_publish_json` (shmstate.h).
///
/// # Safety
/// W, T (`json`, `len` bytes), O (`generation` may be NULL) (see the module docs).
#[no_mangle]
pub unsafe extern "C" fn shmstate_publish_json(
    writer: *mut shmstate_writer,
    json: *const c_char,
    len: usize,
    generation: *mut u64,
) -> Code {
    guard(|| {
        let w = writer_mut(writer)?;
        let g = w.publish_json(text_n(json, len, "the JSON")?)?;
        if generation.is_null() {
            return Ok(());
        }
        put(generation, g, "the output generation")
    })
}
