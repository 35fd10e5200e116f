//! The publish path: options (`options.rs`), the untyped writer that
//! creates or takes over an object and fills its slots (`raw_writer.rs`), the
//! typed writer on top (`writer.rs`), and the lanes it publishes besides its
//! own layout (`lane_spec.rs`, `lanes.rs`; untyped: `raw_lanes.rs`). It stands on `protocol/`, `os/`
//! and `object/`; nothing here reads.

mod lane_spec;
mod lanes;
pub(crate) mod options;
mod raw_lanes;
pub(crate) mod raw_writer;
pub(crate) mod shared;
mod stats;
mod value_writer;
mod writer;

pub use options::WriterOptions;
pub use raw_lanes::RawLaneWriter;
pub use raw_writer::RawWriter;
pub use stats::WriterStats;
pub use writer::Writer;
