//! Derive macros for shmstate (to be written).
use proc_macro::TokenStream;

/// `#[shmstate::shared]`
#[proc_macro_attribute]
pub fn shared(_attr: TokenStream, item: TokenStream) -> TokenStream {
    item
}

/// `#[derive(shmstate::Schema)]`
#[proc_macro_derive(Schema, attributes(schema))]
pub fn derive_schema(_item: TokenStream) -> TokenStream {
    TokenStream::new()
}
