//! The C ABI of shmstate: `libshmstate.so` / `libshmstate.a` and
//! `include/shmstate.h` (with a thin C++17 layer, `include/shmstate.hpp`).
//!
//! C and C++ programs read any object by name, through the library's own
//! untyped path (`RawReader` for the pin, `dynamic::validate` once per
//! generation, `dynamic::Cursor` for each step): the same checks as the
//! `shmstate` command and the Python package, no second decoder. The
//! contract (ownership, lifetimes, errors, threads, versioning) is
//! docs/C_API.md; this crate exports nothing to Rust. Writers publish JSON
//! values through the library's schema-driven encoder.
#![deny(unsafe_code)]

mod error;
mod ffi;
mod map;
mod notify;
mod path;
mod reader;
mod value;
mod writer;
