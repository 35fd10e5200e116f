//! Objects as the rest of the system sees them: names and the shm objects
//! behind them (`name.rs`), opening and bounding a data segment and reader
//! table (`segment.rs`), the layouts a name carries (`layouts.rs`), and the
//! tools' view: [`inspect`], [`list`], [`remove`] and [`removed_users`]
//! (`inspect.rs`, `remove.rs`, `removed.rs`), with where a writer runs as
//! this PID namespace sees it (`holder.rs`). Read and write both stand on this; it stands on `protocol/`
//! and `os/` only.

mod holder;
pub(crate) mod inspect;
pub(crate) mod layouts;
pub(crate) mod name;
mod remove;
mod removed;
pub(crate) mod segment;

pub use holder::WriterSeen;
pub use inspect::{inspect, list, LaneInfo, ObjectInfo, Origin, ReaderInfo, SlotInfo, WriterInfo};
pub use remove::remove;
pub(crate) use remove::remove_object;
pub use removed::{removed_users, RemovedUser};
