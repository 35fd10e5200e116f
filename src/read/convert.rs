//! Reading another layout as `T` ([`ReaderOptions::convert_from`]): the
//! user's conversion from the archived `U`, archived again as a `T`.
//!
//! [`ReaderOptions::convert_from`]: crate::ReaderOptions::convert_from

use std::marker::PhantomData;

use rkyv::rancor::BoxedError;
use rkyv::util::AlignedVec;

use crate::archive::archive_into;
use crate::Shared;

/// Reads another type's layout as `T` (a reader started before any writer of
/// `T`): validates the bytes as `U`, converts, and archives the `T` into a
/// buffer of the reader's own. A copy per new generation, by design.
pub(crate) struct Converter<T> {
    pub(crate) fingerprint: u64,
    convert: Box<ConvertFn>,
    _type: PhantomData<fn() -> T>,
}

type ConvertFn = dyn Fn(&[u8], &mut AlignedVec<16>) -> Result<usize, String> + Send + Sync;

impl<T: Shared> Converter<T> {
    pub(crate) fn from<U: Shared>(convert: impl Fn(&U::Archived) -> T + Send + Sync + 'static) -> Self {
        let convert = move |bytes: &[u8], buf: &mut AlignedVec<16>| {
            let archived = rkyv::access::<U::Archived, BoxedError>(bytes).map_err(|e| e.to_string())?;
            archive_into(&convert(archived), buf)
        };
        Converter { fingerprint: crate::schema::fingerprint_of::<U>(), convert: Box::new(convert), _type: PhantomData }
    }

    /// Converts the archived `U` in `bytes` into `buf`; the archived `T`'s length.
    pub(crate) fn convert(&self, bytes: &[u8], buf: &mut AlignedVec<16>) -> Result<usize, String> {
        (self.convert)(bytes, buf)
    }
}
