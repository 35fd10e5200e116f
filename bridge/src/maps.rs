//! Map objects (`shmstate::map`): a map's root object names a pages segment
//! on its own host only, so it is not shipped as a snapshot: the exporter
//! ships map bodies (`map_export.rs`), the importer applies them into a
//! local map (`map_import.rs`); docs/MAP.md, "Across hosts".

/// Whether an object of this fingerprint is a map's root object.
pub(crate) fn is_map_root(fingerprint: u64) -> bool {
    fingerprint == shmstate::schema::fingerprint_of::<shmstate::map::MapRoot>()
}
