//! Derive macros for shmstate: `#[shared]` and `#[derive(Schema)]`.
//!
//! Layout: `attr` parses `#[shared(..)]`, `#[schema(..)]` and vets `#[rkyv(..)]`;
//! `model` turns the item into fields and variants; `describe` emits the
//! body of the `Schema` impl; `expand` assembles it; `shared` is the attribute
//! macro. Errors are `syn::Error`s with spans, never panics.

mod attr;
mod describe;
mod expand;
mod model;
mod shared;

use proc_macro::TokenStream;

/// `#[shmstate::shared]`: derives rkyv `Archive`/`Serialize`/`Deserialize` and
/// `Schema` through the shmstate re-exports. `#[shared(crate = path)]` names
/// the shmstate crate when it is renamed.
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
