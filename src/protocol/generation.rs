//! Generation numbers.

use core::fmt;

/// The number of a published snapshot: 1 for the first publish of an object,
/// strictly increasing across publishes and across writers that take over.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Generation(pub(crate) u64);

impl Generation {
    /// "Nothing published yet": older than every generation.
    pub const NONE: Generation = Generation(0);

    /// The number.
    pub const fn get(self) -> u64 {
        self.0
    }

    /// A generation from its number (e.g. one received from another process).
    pub const fn new(n: u64) -> Self {
        Generation(n)
    }
}

impl fmt::Display for Generation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}
