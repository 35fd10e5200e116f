//! Assembles `impl Schema` from the model, inside `const _: () = { .. };`.

use proc_macro2::TokenStream;
use quote::{quote, ToTokens};
use syn::{parse_quote, DeriveInput, GenericParam, Generics, Ident};

use crate::describe;
use crate::model::{mentions, Model, Shape};

pub fn derive(input: &DeriveInput) -> syn::Result<TokenStream> {
    let m = Model::parse(input)?;
    let p = &m.krate;
    let ident = m.ident;
    let generics = bounded_generics(&m);
    let (impl_g, ty_g, where_c) = generics.split_for_impl();
    let describe = describe::body(&m);
    let tag = tag_enum(&m);
    Ok(quote! {
        const _: () = {
            #tag
            #[automatically_derived]
            impl #impl_g #p::__private::Schema for #ident #ty_g #where_c {
                fn describe(
                    builder: &mut #p::__private::SchemaBuilder,
                ) -> #p::__private::TypeIndex {
                    #describe
                }
            }
        };
    })
}

/// The user's generics plus `T: Schema` for each type parameter and
/// `F: Schema + Archive` for each field type that mentions one (but not the
/// item itself: a bound on `Vec<Node<T>>` inside `Node<T>`'s impl is cyclic).
///
/// No `Self: Archive` bound: as a where-clause it would keep
/// `<Self as Archive>::Archived` an opaque projection, and `offset_of!` needs
/// the concrete archived struct that rkyv's impl provides.
fn bounded_generics(m: &Model<'_>) -> Generics {
    let p = &m.krate;
    let mut g = m.generics.clone();
    let params: Vec<Ident> = g
        .params
        .iter()
        .filter_map(|gp| match gp {
            GenericParam::Type(t) => Some(t.ident.clone()),
            _ => None,
        })
        .collect();
    if params.is_empty() {
        return g;
    }
    let fields: Vec<_> = match &m.shape {
        Shape::Struct { fields, .. } => fields.iter().collect(),
        Shape::Enum(vs) => vs.iter().flat_map(|v| &v.fields).collect(),
    };
    let wc = g.make_where_clause();
    for id in &params {
        wc.predicates.push(parse_quote!(#id: #p::__private::Schema));
    }
    let mut seen = Vec::new();
    for f in fields.into_iter().filter(|f| !f.mentions_self) {
        let ty = f.ty;
        let key = ty.to_token_stream().to_string();
        if mentions(ty.to_token_stream(), |id| params.contains(id)) && !seen.contains(&key) {
            seen.push(key);
            wc.predicates.push(parse_quote!(
                #ty: #p::__private::Schema + #p::__private::rkyv::Archive
            ));
        }
    }
    g
}

/// A fieldless copy of the enum's tags, so `Tag::V as u64` yields exactly the
/// discriminant rkyv's own `#[repr(u8)] enum ArchivedTag` gets from the same
/// expressions (implicit ones counting up from the previous).
fn tag_enum(m: &Model<'_>) -> Option<TokenStream> {
    let Shape::Enum(variants) = &m.shape else {
        return None;
    };
    let tags = variants.iter().map(|v| {
        let ident = v.ident;
        match v.discriminant {
            Some(e) => quote!(#ident = #e),
            None => quote!(#ident),
        }
    });
    Some(quote! {
        #[allow(dead_code, non_camel_case_types, clippy::all)]
        #[repr(u8)]
        enum __ShmstateTag { #(#tags,)* }
    })
}
