//! `#[shared]`: rewrites the item with the rkyv derives and `Schema` derive in
//! front of the user's own attributes (a derive must precede the helper
//! attributes it introduces, such as the user's `#[rkyv(..)]`).

use proc_macro2::TokenStream;
use quote::quote;
use syn::{Data, DeriveInput};

use crate::attr;

pub fn expand(args: TokenStream, item: TokenStream) -> TokenStream {
    let custom = match attr::parse_shared_args(args) {
        Ok(c) => c,
        // Keep the item so one bad argument does not cascade into
        // "cannot find type" errors everywhere it is used.
        Err(e) => return with_item(e, item),
    };
    let input = match syn::parse2::<DeriveInput>(item.clone()) {
        Ok(i) => i,
        Err(e) => {
            let e = syn::Error::new(e.span(), "#[shared] applies to structs and enums");
            return with_item(e, item);
        }
    };
    if let Data::Union(u) = &input.data {
        let e = syn::Error::new_spanned(
            u.union_token,
            "#[shared] supports structs and enums, not unions (rkyv cannot archive unions)",
        );
        return with_item(e, item);
    }
    let p = custom.clone().unwrap_or_else(attr::default_crate);
    // The derive reads the path from `#[schema(crate = ..)]`; the default needs none.
    let schema_attr = custom.map(|c| quote!(#[schema(crate = #c)]));
    quote! {
        #[derive(#p::rkyv::Archive, #p::rkyv::Serialize, #p::rkyv::Deserialize, #p::Schema)]
        #[rkyv(crate = #p::rkyv)]
        #schema_attr
        #input
    }
}

fn with_item(e: syn::Error, item: TokenStream) -> TokenStream {
    let e = e.into_compile_error();
    quote!(#e #item)
}
