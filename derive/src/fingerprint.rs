//! The `const FINGERPRINT` expression.
//!
//! Mixed in order: "struct"/"enum", the type name (not its module path, so moving
//! a type keeps it compatible), the fingerprints of type parameters and the
//! values of const parameters, then per field its name and type fingerprint
//! (per variant first its name, tag value, style and field count), and last the
//! rkyv format and the archived size and alignment, which catch layout drift the
//! names cannot show.

use proc_macro2::TokenStream;
use quote::quote;
use syn::GenericParam;

use crate::model::{spelling, Field, Model, Shape};

pub fn expr(m: &Model<'_>) -> TokenStream {
    let p = &m.krate;
    let fp = quote!(#p::__private::fp);
    let core = quote!(#p::__private::core);
    let schema = quote!(#p::__private::Schema);

    let (head, body) = match &m.shape {
        Shape::Struct { style, fields } => {
            let code = style.code();
            let fields = mix_fields(m, fields);
            ("struct", quote! { h = #fp::mix(h, #code); #fields })
        }
        Shape::Enum(variants) => {
            let count = variants.len() as u64;
            let per_variant = variants.iter().map(|v| {
                let name = &v.name;
                let ident = v.ident;
                let (code, n) = (v.style.code(), v.fields.len() as u64);
                let fields = mix_fields(m, &v.fields);
                quote! {
                    h = #fp::mix_str(h, #name);
                    h = #fp::mix(h, __ShmstateTag::#ident as u64);
                    h = #fp::mix(h, #code);
                    h = #fp::mix(h, #n);
                    #fields
                }
            });
            ("enum", quote! { h = #fp::mix(h, #count); #(#per_variant)* })
        }
    };

    let params = m.generics.params.iter().filter_map(|g| match g {
        GenericParam::Type(t) => {
            let id = &t.ident;
            Some(quote! { h = #fp::mix(h, <#id as #schema>::FINGERPRINT); })
        }
        GenericParam::Const(c) => {
            let id = &c.ident;
            Some(quote! { h = #fp::mix(h, #id as u64); })
        }
        GenericParam::Lifetime(_) => None,
    });

    let name = &m.name;
    quote! {{
        let mut h = #fp::compose(#head, &[]);
        h = #fp::mix_str(h, #name);
        #(#params)*
        #body
        h = #fp::mix(h, #fp::RKYV_FORMAT);
        h = #fp::mix(h, #core::mem::size_of::<<Self as #p::__private::rkyv::Archive>::Archived>() as u64);
        h = #fp::mix(h, #core::mem::align_of::<<Self as #p::__private::rkyv::Archive>::Archived>() as u64);
        h
    }}
}

fn mix_fields(m: &Model<'_>, fields: &[Field<'_>]) -> TokenStream {
    let p = &m.krate;
    let fp = quote!(#p::__private::fp);
    let n = fields.len() as u64;
    let each = fields.iter().map(|f| {
        let name = &f.name;
        let ty = f.ty;
        let ty_fp = if f.by_spelling {
            // A self-referential type cannot compose its own constant.
            let s = spelling(ty);
            quote!(#fp::compose("by-spelling", &[#fp::mix_str(0, #s)]))
        } else {
            quote!(<#ty as #p::__private::Schema>::FINGERPRINT)
        };
        quote! {
            h = #fp::mix_str(h, #name);
            h = #fp::mix(h, #ty_fp);
        }
    });
    quote! { h = #fp::mix(h, #n); #(#each)* }
}
