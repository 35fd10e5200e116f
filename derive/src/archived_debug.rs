//! `Debug` for the archived type of a generic `#[shared]` item.
//!
//! rkyv's `#[rkyv(derive(Debug))]` is std's derive on the archived type, which
//! bounds `T: Debug` while the fields hold `Archived<T>`; so generic items get
//! this impl instead, bounded by `Archived<T>: Debug` for each type parameter.
//! It prints what the derive would: `ArchivedName { field: value, .. }`.

use proc_macro2::{Span, TokenStream};
use quote::{format_ident, quote};
use syn::ext::IdentExt as _;
use syn::{parse_quote, Data, DeriveInput, Fields, Ident, Path};

/// `archived`: the archived type's name (`ArchivedX`, or `#[rkyv(archived = ..)]`).
pub fn impl_debug(input: &DeriveInput, p: &Path, archived: &Ident) -> TokenStream {
    let mut generics = input.generics.clone();
    let params: Vec<Ident> = generics.type_params().map(|t| t.ident.clone()).collect();
    let where_clause = generics.make_where_clause();
    for t in &params {
        where_clause.predicates.push(parse_quote!(#t: #p::rkyv::Archive));
        where_clause.predicates.push(parse_quote!(<#t as #p::rkyv::Archive>::Archived: ::core::fmt::Debug));
    }
    let (impl_generics, ty_generics, where_clause) = generics.split_for_impl();
    let body = match &input.data {
        Data::Struct(s) => {
            let (pattern, show) = fields(quote!(#archived), &archived.unraw().to_string(), &s.fields);
            quote!(let #pattern = self; #show)
        }
        Data::Enum(e) => {
            let arms = e.variants.iter().map(|v| {
                let ident = &v.ident;
                let (pattern, show) = fields(quote!(#archived::#ident), &ident.unraw().to_string(), &v.fields);
                quote!(#pattern => { #show })
            });
            quote!(match self { #(#arms)* })
        }
        Data::Union(_) => unreachable!("unions are rejected before"),
    };
    quote! {
        #[automatically_derived]
        impl #impl_generics ::core::fmt::Debug for #archived #ty_generics #where_clause {
            fn fmt(&self, f: &mut ::core::fmt::Formatter<'_>) -> ::core::fmt::Result {
                #body
            }
        }
    }
}

/// A pattern binding every field of `path`, and the code that prints them.
fn fields(path: TokenStream, name: &str, fields: &Fields) -> (TokenStream, TokenStream) {
    let bindings: Vec<Ident> =
        (0..fields.len()).map(|i| format_ident!("__field{}", i, span = Span::call_site())).collect();
    match fields {
        Fields::Named(named) => {
            let members: Vec<&Ident> = named.named.iter().filter_map(|f| f.ident.as_ref()).collect();
            let labels = members.iter().map(|m| m.unraw().to_string());
            (
                quote!(#path { #(#members: #bindings),* }),
                quote!(f.debug_struct(#name) #(.field(#labels, #bindings))* .finish()),
            )
        }
        Fields::Unnamed(_) => {
            (quote!(#path(#(#bindings),*)), quote!(f.debug_tuple(#name) #(.field(#bindings))* .finish()))
        }
        Fields::Unit => (quote!(#path), quote!(f.write_str(#name))),
    }
}
