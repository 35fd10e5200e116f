//! loom model of the protocol (see tests in this file).
