//! Resolving a name to the object a reader of `T` reads: the plain name if
//! it carries `T`'s layout, else the lane of `T`'s fingerprint
//! (docs/DEPLOYING.md "Lanes"), else, with a converter, the converter's
//! layout; and the checks made on what was found (owner, type).

use std::time::Duration;

use crate::error::OpenError;
use crate::object::layouts::type_mismatch_doc;
use crate::object::segment::{DataSegment, Geometry};
use crate::read::convert::Converter;
use crate::read::raw_reader::RawReader;
use crate::Shared;

/// Opens the object that carries the layout of fingerprint `fp` under
/// `name`: the plain name if it carries it, else the lane `name@fp`.
/// `TypeMismatch` (made by `mismatch` from the plain object, listing the
/// lanes present) when the name exists in other layouts only; what the
/// plain name gave (`NotFound`, `NotInitialized`) when no object carries it.
pub(crate) fn open_layout(
    name: &str,
    fp: u64,
    init_timeout: Duration,
    mismatch: impl FnOnce(&RawReader) -> OpenError,
) -> Result<RawReader, OpenError> {
    let (plain, missing) = match RawReader::open(name, init_timeout) {
        Ok(raw) if raw.geo.fingerprint == fp => return Ok(raw),
        Ok(raw) => (Some(raw), None),
        Err(e @ (OpenError::NotFound { .. } | OpenError::NotInitialized { .. })) => {
            if crate::object::name::split_lane(name).is_some() {
                return Err(e);
            }
            (None, Some(e))
        }
        Err(e) => return Err(e),
    };
    if crate::object::name::split_lane(name).is_none() {
        match RawReader::open(&crate::object::name::lane(name, fp), init_timeout) {
            Ok(raw) if raw.geo.fingerprint == fp => return Ok(raw),
            // A lane's name says its fingerprint; another one inside is no lane of ours.
            Ok(_) | Err(OpenError::NotFound { .. } | OpenError::NotInitialized { .. }) => {}
            Err(e) => return Err(e),
        }
    }
    match (plain, missing) {
        (Some(raw), _) => Err(mismatch(&raw)),
        // What the plain name gave: nothing there, or a creator still at work.
        (None, Some(e)) => Err(e),
        (None, None) => Err(OpenError::NotFound { name: name.into() }),
    }
}

/// Opens the object of `name` that holds a `T` (the plain name, or the lane
/// of `T`'s fingerprint) and checks it belongs to `owner`, if given.
pub(crate) fn open_checked<T: Shared>(
    name: &str,
    init_timeout: Duration,
    owner: Option<u32>,
) -> Result<RawReader, OpenError> {
    let fp = crate::schema::fingerprint_of::<T>();
    let raw = open_layout(name, fp, init_timeout, |plain| type_mismatch::<T>(name, &plain.data, &plain.geo))?;
    check_owner(name, &raw, owner)?;
    Ok(raw)
}

/// [`open_checked`]; where `name` carries no `T` and a `converter` is
/// given, the object of the converter's layout instead.
pub(crate) fn open_resolved<T: Shared>(
    name: &str,
    init_timeout: Duration,
    owner: Option<u32>,
    converter: Option<&Converter<T>>,
) -> Result<RawReader, OpenError> {
    match (open_checked::<T>(name, init_timeout, owner), converter) {
        (Err(e @ (OpenError::TypeMismatch { .. } | OpenError::NotFound { .. })), Some(c)) => {
            let not_there = |_: &RawReader| OpenError::NotFound { name: name.into() };
            match open_layout(name, c.fingerprint, init_timeout, not_there) {
                Ok(raw) => {
                    check_owner(name, &raw, owner)?;
                    Ok(raw)
                }
                Err(_) => Err(e),
            }
        }
        (opened, _) => opened,
    }
}

fn check_owner(name: &str, raw: &RawReader, owner: Option<u32>) -> Result<(), OpenError> {
    if let Some(want) = owner {
        let (_, owner) =
            raw.data.obj.mode_and_owner().map_err(|errno| OpenError::Os { name: name.into(), op: "fstat", errno })?;
        if owner != want {
            return Err(OpenError::NotOwner { name: name.into(), object: "data segment", owner });
        }
    }
    Ok(())
}

/// The `TypeMismatch` error for `T` against what `seg` stores.
pub(crate) fn type_mismatch<T: Shared>(name: &str, seg: &DataSegment, geo: &Geometry) -> OpenError {
    type_mismatch_doc(name, &crate::schema::schema_of::<T>(), seg, geo)
}
