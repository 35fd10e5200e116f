//! Protocol tests on heap memory (Miri-compatible).
