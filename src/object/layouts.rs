//! The layouts a name carries: probes of the object under a name or its
//! lanes (no reader entry, no schema decoding), and the `TypeMismatch` error
//! that lists them. Used by readers and writers alike.

use std::time::Duration;

use crate::error::OpenError;
use crate::object::segment::{DataSegment, Geometry};
use crate::schema::{SchemaDiff, SchemaDoc};
use crate::Generation;

/// The fingerprint of the object under `name`, without claiming a reader
/// entry; `None` when there is none (or its creator has not finished).
pub(crate) fn fingerprint_under(name: &str) -> Result<Option<u64>, OpenError> {
    match DataSegment::open(name, false, Duration::ZERO) {
        Ok((_, geo)) => Ok(Some(geo.fingerprint)),
        Err(OpenError::NotFound { .. } | OpenError::NotInitialized { .. }) => Ok(None),
        Err(e) => Err(e),
    }
}

/// The latest generation published in the layout of fingerprint `fp` under
/// `name` (the plain name or its lane), if one has been; a cheap probe (no
/// reader entry, no schema decoding) for readers that poll for their layout.
pub(crate) fn published_generation(name: &str, fp: u64) -> Option<Generation> {
    let lane = crate::object::name::lane(name, fp);
    let found = [name, lane.as_str()].into_iter().find_map(|object| published_in(object, Some(fp)));
    found
}

/// The latest generation published in the object `object` (of fingerprint
/// `fp`, if given), if any.
pub(crate) fn published_in(object: &str, fp: Option<u64>) -> Option<Generation> {
    let (seg, geo) = DataSegment::open(object, false, Duration::ZERO).ok()?;
    // SYNC(publish): Acquire pairs with the Release in `protocol::publish`.
    let word = seg.header().current.load(crate::protocol::sync::Ordering::Acquire);
    let g = Generation::new(crate::protocol::generation_of(word));
    (fp.is_none_or(|fp| geo.fingerprint == fp) && g > Generation::NONE).then_some(g)
}

/// "; lanes: `fp` (`Type`), …" for a `TypeMismatch` message: the other
/// layouts `name` carries. Empty when it has no lane.
pub(crate) fn lanes_note(name: &str) -> String {
    let lanes = crate::object::name::lanes_in_shm(name);
    if lanes.is_empty() {
        return String::new();
    }
    let described: Vec<String> = lanes
        .iter()
        .map(|(lane, fp)| match crate::inspect(lane).ok().and_then(|i| i.type_name) {
            Some(ty) => format!("{ty} ({fp:#018x})"),
            None => format!("{fp:#018x}"),
        })
        .collect();
    format!("; also carried in lanes: {}", described.join(", "))
}

/// The `TypeMismatch` error for the type `expected` describes against what
/// `seg` stores: both type names and fingerprints, and the field-level diff
/// from the stored schema.
pub(crate) fn type_mismatch_doc(name: &str, expected: &SchemaDoc, seg: &DataSegment, geo: &Geometry) -> OpenError {
    let (mut found, diff) = match SchemaDoc::decode(&seg.schema_bytes(geo)) {
        Ok(doc) => (
            format!("{} (fingerprint {:#018x})", doc.root().name, geo.fingerprint),
            SchemaDiff::between(&doc, expected),
        ),
        Err(e) => (format!("fingerprint {:#018x}; {e}", geo.fingerprint), SchemaDiff::default()),
    };
    // The other versions the object carries, if any (lanes).
    if crate::object::name::split_lane(name).is_none() {
        found.push_str(&lanes_note(name));
    }
    // The fingerprint covers the rkyv format too; say so when that is the cause.
    let format = seg.header().rkyv_format.load(crate::protocol::sync::Ordering::Relaxed);
    if format != crate::schema::fp::RKYV_FORMAT {
        found.push_str(&format!(
            "; written with another rkyv format: {format:#018x}, this build uses {:#018x} \
             (check rkyv's endianness, alignment and pointer-width features)",
            crate::schema::fp::RKYV_FORMAT
        ));
    }
    OpenError::TypeMismatch {
        name: name.to_string(),
        expected: format!("{} (fingerprint {:#018x})", expected.root().name, expected.fingerprint()),
        found,
        diff,
    }
}
