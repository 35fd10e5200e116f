//! The item reduced to what the `Schema` impl needs: name, generics, crate path,
//! and fields (per variant for enums).

use proc_macro2::{TokenStream, TokenTree};
use quote::ToTokens;
use syn::ext::IdentExt as _;
use syn::{Data, DeriveInput, Expr, Generics, Ident, Member, Path, Type};

use crate::attr;

/// How fields are written: `{ a: A }`, `(A)` or nothing.
#[derive(Clone, Copy, PartialEq)]
pub enum Style {
    Named,
    Tuple,
    Unit,
}

impl Style {
    fn of(fields: &syn::Fields) -> Self {
        match fields {
            syn::Fields::Named(_) => Style::Named,
            syn::Fields::Unnamed(_) => Style::Tuple,
            syn::Fields::Unit => Style::Unit,
        }
    }
}

pub struct Field<'a> {
    /// `a` or `0`, for `offset_of!`.
    pub member: Member,
    /// `"a"` (raw identifiers unprefixed) or `"0"`.
    pub name: String,
    pub ty: &'a Type,
    /// The type mentions the item itself (`Vec<Node>` in `Node`).
    pub mentions_self: bool,
}

pub struct Variant<'a> {
    pub ident: &'a Ident,
    /// Without raw prefix.
    pub name: String,
    pub discriminant: Option<&'a Expr>,
    pub style: Style,
    pub fields: Vec<Field<'a>>,
}

pub enum Shape<'a> {
    Struct { style: Style, fields: Vec<Field<'a>> },
    Enum(Vec<Variant<'a>>),
}

pub struct Model<'a> {
    pub ident: &'a Ident,
    /// The type's name without module path or raw prefix.
    pub name: String,
    pub generics: &'a Generics,
    /// Path of the runtime crate (`::shmstate` unless renamed).
    pub krate: Path,
    pub shape: Shape<'a>,
}

impl<'a> Model<'a> {
    pub fn parse(input: &'a DeriveInput) -> syn::Result<Self> {
        let krate = attr::container_crate(&input.attrs)?;
        attr::reject_rkyv_args(&input.attrs, attr::FORBIDDEN_CONTAINER)?;
        let ident = &input.ident;
        let fields = |fs: &'a syn::Fields| -> syn::Result<Vec<Field<'a>>> {
            fs.iter().enumerate().map(|(i, f)| Field::parse(ident, i, f)).collect()
        };
        let shape = match &input.data {
            Data::Struct(s) => Shape::Struct { style: Style::of(&s.fields), fields: fields(&s.fields)? },
            Data::Enum(e) => {
                if e.variants.is_empty() {
                    return Err(syn::Error::new_spanned(
                        ident,
                        "#[derive(Schema)] needs at least one variant: rkyv cannot archive an empty enum",
                    ));
                }
                let variants = e.variants.iter().map(|v| {
                    attr::reject_rkyv_args(&v.attrs, attr::FORBIDDEN_FIELD)?;
                    Ok(Variant {
                        ident: &v.ident,
                        name: v.ident.unraw().to_string(),
                        discriminant: v.discriminant.as_ref().map(|(_, e)| e),
                        style: Style::of(&v.fields),
                        fields: fields(&v.fields)?,
                    })
                });
                Shape::Enum(variants.collect::<syn::Result<_>>()?)
            }
            Data::Union(u) => {
                return Err(syn::Error::new_spanned(
                    u.union_token,
                    "#[derive(Schema)] supports structs and enums, not unions (rkyv cannot archive unions)",
                ))
            }
        };
        Ok(Model { ident, name: ident.unraw().to_string(), generics: &input.generics, krate, shape })
    }
}

impl<'a> Field<'a> {
    fn parse(owner: &Ident, index: usize, f: &'a syn::Field) -> syn::Result<Self> {
        attr::reject_rkyv_args(&f.attrs, attr::FORBIDDEN_FIELD)?;
        attr::reject_field_schema_args(&f.attrs)?;
        let (member, name) = match &f.ident {
            Some(id) => (Member::Named(id.clone()), id.unraw().to_string()),
            None => (Member::Unnamed(index.into()), index.to_string()),
        };
        let mentions_self = mentions(f.ty.to_token_stream(), |id| id == owner || id == "Self");
        Ok(Field { member, name, ty: &f.ty, mentions_self })
    }
}

/// Whether any identifier in `tokens` (at any depth) satisfies `pred`.
pub fn mentions(tokens: TokenStream, pred: impl Fn(&Ident) -> bool + Copy) -> bool {
    tokens.into_iter().any(|t| match t {
        TokenTree::Ident(id) => pred(&id),
        TokenTree::Group(g) => mentions(g.stream(), pred),
        _ => false,
    })
}
