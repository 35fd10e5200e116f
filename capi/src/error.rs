//! Error codes, the thread-local message, and the boundary every exported
//! function goes through (no panic crosses into C).

use std::cell::RefCell;
use std::ffi::{c_char, CString};
use std::panic::{catch_unwind, AssertUnwindSafe};

use shmstate_core::dynamic::DecodeError;
use shmstate_core::{OpenError, PublishError, ReadError, WaitError};

/// `shmstate_error_t`: 0 is success, every failure a positive code. The
/// numbers are part of the ABI: never renumbered, only appended to.
pub type Code = i32;

pub const OK: Code = 0;
pub const INVALID_ARGUMENT: Code = 1;
pub const NOT_FOUND: Code = 2;
pub const EMPTY: Code = 3;
pub const CORRUPT: Code = 4;
pub const INVALID_DATA: Code = 5;
pub const TYPE_MISMATCH: Code = 6;
pub const REPLACED: Code = 7;
pub const REMOVED: Code = 8;
pub const TIMEOUT: Code = 9;
pub const WRITER_DEAD: Code = 10;
pub const NO_SUCH_FIELD: Code = 11;
pub const WRONG_TYPE: Code = 12;
pub const OUT_OF_RANGE: Code = 13;
pub const STALE_VALUE: Code = 14;
pub const NO_SNAPSHOT: Code = 15;
pub const PERMISSION_DENIED: Code = 16;
pub const FORMAT_VERSION: Code = 17;
pub const READERS_FULL: Code = 18;
pub const NOT_INITIALIZED: Code = 19;
pub const OS: Code = 20;
pub const PANIC: Code = 21;
pub const WRITER_BUSY: Code = 22;
pub const NO_SPACE: Code = 23;
pub const TOO_LARGE: Code = 24;
pub const ALL_SLOTS_PINNED: Code = 25;

/// The names `shmstate_error_name` returns, by code.
const NAMES: [&[u8]; 26] = [
    b"SHMSTATE_OK\0",
    b"SHMSTATE_ERR_INVALID_ARGUMENT\0",
    b"SHMSTATE_ERR_NOT_FOUND\0",
    b"SHMSTATE_ERR_EMPTY\0",
    b"SHMSTATE_ERR_CORRUPT\0",
    b"SHMSTATE_ERR_INVALID_DATA\0",
    b"SHMSTATE_ERR_TYPE_MISMATCH\0",
    b"SHMSTATE_ERR_REPLACED\0",
    b"SHMSTATE_ERR_REMOVED\0",
    b"SHMSTATE_ERR_TIMEOUT\0",
    b"SHMSTATE_ERR_WRITER_DEAD\0",
    b"SHMSTATE_ERR_NO_SUCH_FIELD\0",
    b"SHMSTATE_ERR_WRONG_TYPE\0",
    b"SHMSTATE_ERR_OUT_OF_RANGE\0",
    b"SHMSTATE_ERR_STALE_VALUE\0",
    b"SHMSTATE_ERR_NO_SNAPSHOT\0",
    b"SHMSTATE_ERR_PERMISSION_DENIED\0",
    b"SHMSTATE_ERR_FORMAT_VERSION\0",
    b"SHMSTATE_ERR_READERS_FULL\0",
    b"SHMSTATE_ERR_NOT_INITIALIZED\0",
    b"SHMSTATE_ERR_OS\0",
    b"SHMSTATE_ERR_PANIC\0",
    b"SHMSTATE_ERR_WRITER_BUSY\0",
    b"SHMSTATE_ERR_NO_SPACE\0",
    b"SHMSTATE_ERR_TOO_LARGE\0",
    b"SHMSTATE_ERR_ALL_SLOTS_PINNED\0",
];

/// A failure on its way to C: the code and the message.
#[derive(Debug)]
pub struct Error {
    pub code: Code,
    pub message: String,
}

impl Error {
    pub fn new(code: Code, message: impl Into<String>) -> Self {
        Error { code, message: message.into() }
    }
}

pub type Result<T> = std::result::Result<T, Error>;

thread_local! {
    /// The message of the last failure on this thread.
    static LAST: RefCell<CString> = RefCell::new(CString::default());
}

fn set_last(message: &str) {
    // A message from shared memory could hold a NUL: cut there.
    let bytes: Vec<u8> = message.bytes().take_while(|&b| b != 0).collect();
    let c = CString::new(bytes).unwrap_or_default();
    LAST.with(|l| *l.borrow_mut() = c);
}

/// Runs the body of an exported function: a panic becomes `PANIC`, an error
/// sets the thread's message. A success leaves the message alone (as
/// `errno`): it costs nothing on the fast path.
#[inline]
pub fn guard(body: impl FnOnce() -> Result<()>) -> Code {
    let outcome = catch_unwind(AssertUnwindSafe(body));
    match outcome {
        Ok(Ok(())) => OK,
        Ok(Err(e)) => {
            set_last(&e.message);
            e.code
        }
        Err(panic) => {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "a panic".into());
            set_last(&format!("internal error (a bug in shmstate, please report it): {what}"));
            PANIC
        }
    }
}

/// Like [`guard`] for functions that return a value instead of a code: a
/// panic gives `fallback`.
pub fn guard_value<T>(fallback: T, body: impl FnOnce() -> T) -> T {
    catch_unwind(AssertUnwindSafe(body)).unwrap_or(fallback)
}

/// `shmstate_last_error_message`'s pointer: valid until the next call into
/// the library on this thread.
pub fn last_message_ptr() -> *const c_char {
    LAST.with(|l| l.borrow().as_ptr())
}

pub fn name_of(code: i32) -> *const c_char {
    let name: &[u8] =
        usize::try_from(code).ok().and_then(|i| NAMES.get(i)).copied().unwrap_or(b"SHMSTATE_ERR_UNKNOWN\0");
    name.as_ptr().cast()
}

pub fn from_open(e: OpenError) -> Error {
    Error::new(open_code(&e), e.to_string())
}

fn open_code(e: &OpenError) -> Code {
    match e {
        OpenError::NotFound { .. } => NOT_FOUND,
        OpenError::PermissionDenied { .. } | OpenError::NotOwner { .. } => PERMISSION_DENIED,
        OpenError::InvalidName { .. } | OpenError::InvalidOption { .. } => INVALID_ARGUMENT,
        OpenError::TypeMismatch { .. } => TYPE_MISMATCH,
        OpenError::FormatVersion { .. } => FORMAT_VERSION,
        OpenError::Corrupt { .. } => CORRUPT,
        OpenError::NotInitialized { .. } => NOT_INITIALIZED,
        OpenError::ReaderTableFull { .. } => READERS_FULL,
        OpenError::WriterBusy { .. } => WRITER_BUSY,
        OpenError::NoSpace { .. } => NO_SPACE,
        _ => OS,
    }
}

pub fn from_read(e: ReadError) -> Error {
    let code = match &e {
        ReadError::Empty { .. } => EMPTY,
        ReadError::Invalid { .. } => INVALID_DATA,
        ReadError::Corrupt { .. } => CORRUPT,
        ReadError::Replaced { .. } => REPLACED,
        ReadError::Open(o) => open_code(o),
        _ => OS,
    };
    Error::new(code, e.to_string())
}

pub fn from_publish(e: PublishError) -> Error {
    let code = match &e {
        PublishError::TooLarge { .. } => TOO_LARGE,
        PublishError::AllSlotsPinned { .. } => ALL_SLOTS_PINNED,
        PublishError::Serialize { .. } | PublishError::Invalid { .. } => INVALID_DATA,
        PublishError::GenerationsExhausted { .. } => OUT_OF_RANGE,
        PublishError::NoSpace { .. } => NO_SPACE,
        _ => OS,
    };
    Error::new(code, e.to_string())
}

pub fn from_wait(e: WaitError) -> Error {
    let code = match &e {
        WaitError::Timeout { .. } => TIMEOUT,
        WaitError::WriterDead { .. } => WRITER_DEAD,
        WaitError::Replaced { .. } => REPLACED,
        WaitError::Removed { .. } => REMOVED,
        _ => OS,
    };
    Error::new(code, e.to_string())
}

/// A snapshot (or a step into one) that does not decode under the schema.
pub fn from_decode(name: &str, generation: u64, e: DecodeError) -> Error {
    Error::new(INVALID_DATA, format!("{name}: generation {generation} is not a valid snapshot of its schema: {e}"))
}

#[cfg(test)]
#[allow(unsafe_code)] // reading the C strings handed out
mod tests {
    use super::*;
    use std::ffi::CStr;

    fn last() -> String {
        // SAFETY: the pointer is this thread's message, NUL-terminated, valid
        // until the next call into the module on this thread.
        unsafe { CStr::from_ptr(last_message_ptr()) }.to_string_lossy().into_owned()
    }

    #[test]
    fn a_panic_becomes_a_code_and_a_message() {
        assert_eq!(guard(|| panic!("boom {}", 7)), PANIC);
        assert!(last().contains("boom 7"), "{}", last());
        assert_eq!(guard_value(5, || -> i32 { panic!("again") }), 5);
    }

    #[test]
    fn an_error_sets_the_message_and_a_success_keeps_it() {
        assert_eq!(guard(|| Err(Error::new(TIMEOUT, "waited \0 long"))), TIMEOUT);
        assert_eq!(last(), "waited ", "cut at the NUL");
        assert_eq!(guard(|| Ok(())), OK);
        assert_eq!(last(), "waited ");
    }

    #[test]
    fn every_code_has_its_name() {
        // SAFETY: `name_of` returns static NUL-terminated strings.
        let name = |c| unsafe { CStr::from_ptr(name_of(c)) }.to_str().unwrap();
        assert_eq!(name(OK), "SHMSTATE_OK");
        assert_eq!(name(PANIC), "SHMSTATE_ERR_PANIC");
        assert_eq!(name(REPLACED), "SHMSTATE_ERR_REPLACED");
        assert_eq!(name(-1), "SHMSTATE_ERR_UNKNOWN");
        assert_eq!(name(ALL_SLOTS_PINNED), "SHMSTATE_ERR_ALL_SLOTS_PINNED");
        assert_eq!(name(ALL_SLOTS_PINNED + 1), "SHMSTATE_ERR_UNKNOWN");
    }
}
