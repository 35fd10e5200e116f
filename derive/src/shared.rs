//! `#[shared]`: rewrites the item with the rkyv derives and `Schema` derive in
//! front of the user's own attributes (a derive must precede the helper
//! attributes it introduces, such as the user's `#[rkyv(..)]`).
//!
//! It also gives the archived type `Debug` (unless `debug = false`, or the
//! user already asked rkyv for it: a second one would be a duplicate impl),
//! and asks rkyv for `compare(PartialEq)` with `#[shared(compare)]`.

use proc_macro2::{Delimiter, Span, TokenStream, TokenTree};
use quote::{format_ident, quote};
use syn::ext::IdentExt as _;
use syn::punctuated::Punctuated;
use syn::{Attribute, Data, DeriveInput, Ident, Meta, Token};

use crate::{archived_debug, attr};

pub fn expand(args: TokenStream, item: TokenStream) -> TokenStream {
    let args = match attr::parse_shared_args(args) {
        Ok(a) => a,
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
    let asked = UserRkyv::of(&input.attrs);
    let p = args.krate.clone().unwrap_or_else(attr::default_crate);
    // rkyv's `derive(Debug)` bounds `T: Debug` where the fields need
    // `Archived<T>: Debug`: generic items get an impl of their own.
    let generic = input.generics.type_params().next().is_some();
    let (debug_attr, debug_impl) = match args.debug && !asked.derives_debug {
        false => (None, None),
        true if generic => {
            let archived = asked.archived.clone().unwrap_or_else(|| format_ident!("Archived{}", input.ident.unraw()));
            (None, Some(archived_debug::impl_debug(&input, &p, &archived)))
        }
        true => (Some(quote!(#[rkyv(derive(Debug))])), None),
    };
    let (compare, conflict) = match (args.compare, asked.compare) {
        (false, _) | (true, Some((_, true))) => (None, None),
        (true, None) => (Some(quote!(#[rkyv(compare(PartialEq))])), None),
        // rkyv takes one `compare(..)` list: say to merge into the user's,
        // rather than let rkyv report "already specified". The item is still
        // derived so that the error stands alone.
        (true, Some((span, false))) => {
            let e = syn::Error::new(
                span,
                "#[shared(compare)] adds `compare(PartialEq)`, and rkyv takes one `compare(..)` list: \
                 add `PartialEq` to this one instead",
            );
            (None, Some(e.into_compile_error()))
        }
    };
    // The derive reads the path from `#[schema(crate = ..)]`; the default needs none.
    let schema_attr = args.krate.map(|c| quote!(#[schema(crate = #c)]));
    quote! {
        #conflict
        #[derive(#p::rkyv::Archive, #p::rkyv::Serialize, #p::rkyv::Deserialize, #p::Schema)]
        #[rkyv(crate = #p::rkyv)]
        #debug_attr
        #compare
        #schema_attr
        #input
        #debug_impl
    }
}

fn with_item(e: syn::Error, item: TokenStream) -> TokenStream {
    let e = e.into_compile_error();
    quote!(#e #item)
}

/// What the user's own container `#[rkyv(..)]` attributes already ask for.
#[derive(Default)]
struct UserRkyv {
    /// `derive(Debug)` or `attr(derive(Debug))`, under any path ending in `Debug`.
    derives_debug: bool,
    /// A `compare(..)` list: where, and whether it holds `PartialEq`.
    compare: Option<(Span, bool)>,
    /// `archived = Name`: the archived type's name.
    archived: Option<Ident>,
}

impl UserRkyv {
    fn of(attrs: &[Attribute]) -> Self {
        let mut asked = UserRkyv::default();
        for attr in attrs.iter().filter(|a| a.path().is_ident("rkyv")) {
            // Malformed `#[rkyv]` attributes are rkyv's to report.
            let Ok(list) = attr.meta.require_list() else {
                continue;
            };
            // Walk the top level by hand: `as = Type` is not a `syn::Meta`.
            let tokens: Vec<TokenTree> = list.tokens.clone().into_iter().collect();
            for triple in tokens.windows(3) {
                if let [TokenTree::Ident(key), TokenTree::Punct(eq), TokenTree::Ident(name)] = triple {
                    if key == "archived" && eq.as_char() == '=' {
                        asked.archived = Some(name.clone());
                    }
                }
            }
            for pair in tokens.windows(2) {
                let (TokenTree::Ident(key), TokenTree::Group(group)) = (&pair[0], &pair[1]) else {
                    continue;
                };
                if group.delimiter() != Delimiter::Parenthesis {
                    continue;
                }
                if key == "derive" {
                    asked.derives_debug |= names(group.stream()).iter().any(|m| ends_with(m, "Debug"));
                } else if key == "attr" {
                    for meta in names(group.stream()) {
                        if let Meta::List(l) = meta.clone() {
                            if l.path.is_ident("derive") {
                                asked.derives_debug |= names(l.tokens).iter().any(|m| ends_with(m, "Debug"));
                            }
                        }
                    }
                } else if key == "compare" {
                    let has_eq = names(group.stream()).iter().any(|m| ends_with(m, "PartialEq"));
                    asked.compare = Some((key.span(), has_eq));
                }
            }
        }
        asked
    }
}

/// The comma-separated metas of a list; none if rkyv would reject it anyway.
fn names(tokens: TokenStream) -> Vec<Meta> {
    syn::parse::Parser::parse2(Punctuated::<Meta, Token![,]>::parse_terminated, tokens)
        .map(|p| p.into_iter().collect())
        .unwrap_or_default()
}

fn ends_with(meta: &Meta, name: &str) -> bool {
    meta.path().segments.last().is_some_and(|s| s.ident == name)
}
