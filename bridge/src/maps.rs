//! Map objects (`shmstate::map`) are not mirrored yet: a map's root object
//! is an ordinary object whose snapshot is a `MapRoot`, which names a pages
//! segment on its own host only. Shipped alone, it would give the importing
//! host a map whose pages are missing. So the exporter does not export a
//! map, and the importer refuses a map root record (docs/ACROSS_HOSTS.md,
//! "Limits"; the design of map mirroring is in docs/MAP.md, "Across hosts").

/// Whether an object of this fingerprint is a map's root object.
pub(crate) fn is_map_root(fingerprint: u64) -> bool {
    fingerprint == shmstate::schema::fingerprint_of::<shmstate::map::MapRoot>()
}

/// Why a map is neither exported nor imported.
pub(crate) const NOT_MIRRORED: &str =
    "it is a map's root object: maps are not mirrored yet (its pages would not follow; docs/ACROSS_HOSTS.md)";
