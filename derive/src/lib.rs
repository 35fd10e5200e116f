//! Derive macros for shmstate: `#[shared]` and `#[derive(Schema)]`.
//!
//! Layout: `attr` parses `#[shared(..)]`, `#[schema(..)]` and vets `#[rkyv(..)]`;
//! `model` turns the item into fields and variants; `describe` emits the
//! body of the `Schema` impl; `expand` assembles it; `shared` is the attribute
//! macro. Errors are `syn::Error`s with spans, never panics.

mod archived_debug;
mod attr;
mod describe;
mod expand;
mod model;
mod shared;

use proc_macro::TokenStream;

/// `#[shmstate::shared]`: derives rkyv `Archive`/`Serialize`/`Deserialize` and
/// `Schema` through the shmstate re-exports.
///
/// The archived type (`ArchivedName`) implements `Debug`, so a snapshot prints
/// with `{:?}`. Your own `#[rkyv(..)]` attributes pass through to rkyv, e.g.
/// `#[rkyv(derive(PartialEq, Eq, Hash))]` for more traits on the archived type;
/// a `Debug` you ask for there is not derived twice.
///
/// Arguments, all optional:
/// - `crate = path` names the shmstate crate when it is renamed.
/// - `debug = false`: no `Debug` on the archived type (to write your own, or
///   when a field's archived type has none).
/// - `compare`: the archived type implements `PartialEq<Name>`, so
///   `*snapshot == value` compares in place (rkyv's `compare(PartialEq)`).
///   Every field's type must allow it: nested types need `compare` too, and a
///   `HashMap` compares only if its owned key borrows as the archived key,
///   which `String` and multi-byte integers do not (`String: Borrow<ArchivedString>`
///   is not implemented). Use a `BTreeMap`, or compare `to_value()`.
#[proc_macro_attribute]
pub fn shared(attr: TokenStream, item: TokenStream) -> TokenStream {
    shared::expand(attr.into(), item.into()).into()
}

/// `#[derive(shmstate::Schema)]`: the `Schema` impl alone (the type must also
/// derive rkyv `Archive`). Container attribute `#[schema(crate = path)]`.
#[proc_macro_derive(Schema, attributes(schema))]
pub fn derive_schema(item: TokenStream) -> TokenStream {
    match syn::parse::<syn::DeriveInput>(item) {
        Ok(input) => expand::derive(&input).unwrap_or_else(syn::Error::into_compile_error),
        Err(e) => e.into_compile_error(),
    }
    .into()
}
