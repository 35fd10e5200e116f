//! Map objects (docs/MAP.md) for C: `shmstate_map_*` (declared in
//! include/shmstate.h). A `shmstate_map` is a [`RawMapReader`] (one pin on a
//! map generation) plus a [`Reader`] that holds the value last looked up, so
//! that a value is a `shmstate_value` every accessor reads.
//!
//! # Safety
//! The pointer helpers are ffi.rs's. A map handle is a leaked `Box<Map>`,
//! used by one thread at a time and not after `shmstate_map_close` (the
//! header's contract, as for readers: rules **R**, **O**, **T** of ffi.rs,
//! with "map" for "reader"). The value holder's bytes are a value block of
//! the generation the map pins; `hold_value` is called only with bytes
//! validated under the stored schema, and the pin is dropped (next read,
//! release, close) only after the holder let go of them.
#![allow(unsafe_code, non_camel_case_types)]

use std::ffi::c_char;

use shmstate_core::map::RawMapReader;
use shmstate_core::Generation;

use crate::error::{self, guard, guard_value, Code, Error, Result};
use crate::ffi::{null, put, shmstate_value, text, text_n, to_c};
use crate::reader::Reader;
use crate::value::At;

/// Opaque to C: a [`Map`].
pub struct shmstate_map {
    _private: [u8; 0],
}

/// What `shmstate_map *` points to.
struct Map {
    raw: RawMapReader,
    /// Holds the value of the last `shmstate_map_get` (its values' `snapshot`).
    values: Reader,
}

impl Map {
    fn no_snapshot(&self) -> Error {
        Error::new(
            error::NO_SNAPSHOT,
            format!("{}: no map generation is held (call shmstate_map_read first)", self.raw.name()),
        )
    }

    /// Lets go of the held value, then of the generation.
    fn release(&mut self) {
        self.values.release();
        self.raw.release();
    }
}

fn map_mut<'a>(m: *mut shmstate_map) -> Result<&'a mut Map> {
    if m.is_null() {
        return Err(null("the map"));
    }
    // SAFETY: not NULL (checked); a `shmstate_map *` comes from
    // `shmstate_map_open` (a leaked `Box<Map>`) and is not closed yet, and
    // the header allows one thread at a time per map: no other reference lives.
    Ok(unsafe { &mut *m.cast::<Map>() })
}

/// `shmstate_map_open` (shmstate.h).
///
/// # Safety
/// T (`name`), O (see ffi.rs).
#[no_mangle]
pub unsafe extern "C" fn shmstate_map_open(name: *const c_char, out: *mut *mut shmstate_map) -> Code {
    guard(|| {
        put(out, std::ptr::null_mut(), "the output map")?;
        let name = text(name, "the name")?;
        let raw = RawMapReader::open(name).map_err(error::from_open)?;
        let values = Reader::for_map_values(name, raw.schema().clone())?;
        put(out, Box::into_raw(Box::new(Map { raw, values })).cast(), "the output map")
    })
}

/// `shmstate_map_close` (shmstate.h).
///
/// # Safety
/// The map is NULL or open, and not used again (nor its values).
#[no_mangle]
pub unsafe extern "C" fn shmstate_map_close(map: *mut shmstate_map) {
    guard_value((), || {
        if !map.is_null() {
            // SAFETY: not NULL; from `Box::into_raw` in `shmstate_map_open`,
            // closed once and not used afterwards (the header's contract).
            let mut m = unsafe { Box::from_raw(map.cast::<Map>()) };
            m.release();
        }
    })
}

/// `shmstate_map_read` (shmstate.h).
///
/// # Safety
/// R (the map), O (`generation` may be NULL) (see ffi.rs).
#[no_mangle]
pub unsafe extern "C" fn shmstate_map_read(map: *mut shmstate_map, generation: *mut u64) -> Code {
    guard(|| {
        let m = map_mut(map)?;
        m.values.release();
        let g = m.raw.read().map_err(error::from_read)?.generation().get();
        if generation.is_null() {
            return Ok(());
        }
        put(generation, g, "the output generation")
    })
}

/// `shmstate_map_release` (shmstate.h).
///
/// # Safety
/// R (the map) (see ffi.rs).
#[no_mangle]
pub unsafe extern "C" fn shmstate_map_release(map: *mut shmstate_map) {
    guard_value((), || {
        if let Ok(m) = map_mut(map) {
            m.release();
        }
    })
}

/// `shmstate_map_len` (shmstate.h).
///
/// # Safety
/// R (the map), O (see ffi.rs).
#[no_mangle]
pub unsafe extern "C" fn shmstate_map_len(map: *mut shmstate_map, out: *mut u64) -> Code {
    guard(|| {
        let m = map_mut(map)?;
        let len = m.raw.pinned().ok_or_else(|| m.no_snapshot())?.len();
        put(out, len, "the output length")
    })
}

/// `shmstate_map_get` (shmstate.h).
///
/// # Safety
/// R (the map), T (`key`, `key_len`), O (see ffi.rs).
#[no_mangle]
pub unsafe extern "C" fn shmstate_map_get(
    map: *mut shmstate_map,
    key: *const c_char,
    key_len: usize,
    out: *mut shmstate_value,
) -> Code {
    guard(|| {
        if out.is_null() {
            return Err(null("the output value"));
        }
        let m = map_mut(map)?;
        let key_text = text_n(key, key_len, "the key")?;
        m.values.release();
        let snap = m.raw.pinned().ok_or_else(|| m.no_snapshot())?;
        let name = m.raw.name();
        let key =
            snap.key_kind().parse(key_text).map_err(|e| Error::new(error::INVALID_ARGUMENT, format!("{name}: {e}")))?;
        let generation = Generation::new(snap.generation().get());
        let Some(bytes) = snap.get_bytes(&key).map_err(error::from_read)? else {
            return Err(Error::new(error::NO_SUCH_FIELD, format!("{name}: no key {key_text:?}")));
        };
        // SAFETY: `get_bytes` validated the block under the stored schema
        // (the holder's), and the map's pin on this generation lasts until
        // the next read, release or close, each of which releases the
        // holder first (`Map::release`, `shmstate_map_read`, `shmstate_map_get`).
        unsafe { m.values.hold_value(generation, bytes) };
        let root = At::root(&m.values)?;
        put(out, to_c(&root), "the output value")
    })
}
