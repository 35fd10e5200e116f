//! The read path: the untyped handle that owns a reader-table entry and
//! pins (`raw_reader.rs`), the typed reader and its snapshots (`reader.rs`,
//! `snapshot.rs`, following in `reader/follow.rs`), resolving a name to a
//! layout (`resolve.rs`), conversion (`convert.rs`), the many-thread handle
//! (`shared_reader.rs`), and waiting: opening before the writer
//! (`await_writer.rs`), blocking waits (`watch.rs`), the async
//! `changed()` (`changed.rs`, feature `tokio`), and the watch-like
//! `Receiver` on a shared handle (`receiver.rs`). It stands on `protocol/`,
//! `os/` and `object/`; nothing here writes.

mod await_writer;
#[cfg(feature = "tokio")]
pub(crate) mod changed;
mod convert;
mod options;
pub(crate) mod raw_reader;
mod reader;
mod receiver;
mod resolve;
pub(crate) mod rewatch;
mod shared_reader;
mod snapshot;
pub(crate) mod stats;
pub(crate) mod watch;

#[cfg(feature = "tokio")]
pub use changed::Changed;
pub use options::ReaderOptions;
pub use raw_reader::{RawReader, DEFAULT_WRITER_GRACE};
pub use reader::Reader;
pub use receiver::Receiver;
pub use shared_reader::{SharedReader, SharedSnapshot};
pub use snapshot::{Releasing, Snapshot};
pub use stats::ReaderStats;
