//! The body of `fn describe`: a `TypeDesc` with the generic name, the archived
//! size and alignment, and fields at their archived offsets.
//!
//! Struct offsets come from `offset_of!` on rkyv's archived struct (`repr(C)`,
//! same field names). rkyv's per-variant structs are private, so enum offsets
//! are recomputed with `repr(C)` rules behind the one-byte tag:
//! rkyv_derive 0.8 archives every enum as `#[repr(u8)]`, each variant laid out as
//! `#[repr(C)] struct { __tag: u8, fields… }`, tags equal to the Rust
//! discriminants.

use proc_macro2::TokenStream;
use quote::quote;
use syn::GenericParam;

use crate::model::{Field, Model, Shape, Style};

/// Width of rkyv 0.8's archived enum tag (`#[repr(u8)]`, at most 256 variants).
const TAG_SIZE: usize = 1;

pub fn body(m: &Model<'_>) -> TokenStream {
    let p = &m.krate;
    let pr = quote!(#p::__private);
    let archived = quote!(<Self as #pr::rkyv::Archive>::Archived);

    let kind = match &m.shape {
        Shape::Struct { style, fields } => {
            let fields = fields.iter().map(|f| {
                let member = &f.member;
                field(m, f, quote!(#pr::core::mem::offset_of!(#archived, #member) as u32))
            });
            let tuple = *style == Style::Tuple;
            quote!(#pr::Kind::Struct { fields: #pr::Vec::from([#(#fields),*]), tuple: #tuple })
        }
        Shape::Enum(variants) => {
            let variants = variants.iter().map(|v| {
                let layouts = v.fields.iter().map(|f| {
                    let ty = f.ty;
                    let a = quote!(<#ty as #pr::rkyv::Archive>::Archived);
                    quote!((#pr::core::mem::size_of::<#a>(), #pr::core::mem::align_of::<#a>()))
                });
                let fields = v.fields.iter().enumerate().map(|(i, f)| field(m, f, quote!(offsets[#i])));
                let (name, ident, tuple) = (&v.name, v.ident, v.style == Style::Tuple);
                let offsets = (!v.fields.is_empty())
                    .then(|| quote!(let offsets = #pr::SchemaBuilder::repr_c_offsets(#TAG_SIZE, [#(#layouts),*]);));
                quote! {{
                    #offsets
                    #pr::Variant {
                        name: #pr::String::from(#name),
                        discriminant: __ShmstateTag::#ident as u64,
                        fields: #pr::Vec::from([#(#fields),*]),
                        tuple: #tuple,
                    }
                }}
            });
            let tag_size = TAG_SIZE as u32;
            quote!(#pr::Kind::Enum { variants: #pr::Vec::from([#(#variants),*]), tag_size: #tag_size })
        }
    };

    // Closure parameters are named only when used, so expansions stay lint-free.
    let name = type_name(m);
    let uses_b = match &m.shape {
        Shape::Struct { fields, .. } => !fields.is_empty(),
        Shape::Enum(vs) => vs.iter().any(|v| !v.fields.is_empty()),
    };
    let b = if uses_b { quote!(b) } else { quote!(_) };
    quote! {
        builder.describe_named::<Self>(
            #name,
            |#b, name| #pr::TypeDesc {
                name,
                size: #pr::core::mem::size_of::<#archived>() as u32,
                align: #pr::core::mem::align_of::<#archived>() as u32,
                kind: #kind,
            },
        )
    }
}

fn field(m: &Model<'_>, f: &Field<'_>, offset: TokenStream) -> TokenStream {
    let p = &m.krate;
    let (name, ty) = (&f.name, f.ty);
    quote! {
        #p::__private::Field {
            name: #p::__private::String::from(#name),
            ty: b.add::<#ty>(),
            offset: #offset,
        }
    }
}

/// The closure computing the name: `Pair<u32>` is the base name plus the
/// recorded names of the type arguments and the values of const arguments.
fn type_name(m: &Model<'_>) -> TokenStream {
    let p = &m.krate;
    let sb = quote!(#p::__private::SchemaBuilder);
    let args: Vec<TokenStream> = m
        .generics
        .params
        .iter()
        .filter_map(|g| match g {
            GenericParam::Type(t) => {
                let id = &t.ident;
                Some(quote!(b.name_of::<#id>()))
            }
            GenericParam::Const(c) => {
                let id = &c.ident;
                Some(quote!(#sb::const_arg(#id)))
            }
            GenericParam::Lifetime(_) => None,
        })
        .collect();
    let base = &m.name;
    if args.is_empty() {
        quote!(|_| #p::__private::String::from(#base))
    } else {
        quote!(|b| #sb::generic_name(#base, &[#(#args),*]))
    }
}
