//! Attribute parsing: `#[shared(crate = ..)]`, `#[schema(..)]`, and the
//! `#[rkyv(..)]` arguments that would make the archived layout diverge from
//! what the derive can see.

use proc_macro2::{Span, TokenStream, TokenTree};
use syn::ext::IdentExt as _;
use syn::meta::ParseNestedMeta;
use syn::parse::{ParseStream, Parser};
use syn::{parse_quote, Attribute, Ident, LitStr, Path, Token};

/// The default path of the runtime crate.
pub fn default_crate() -> Path {
    parse_quote!(::shmstate)
}

/// Arguments of `#[shared(..)]`.
#[derive(Clone)]
pub struct SharedArgs {
    /// `crate = path`: the runtime crate when it is renamed.
    pub krate: Option<Path>,
    /// `debug = false` turns off `Debug` on the archived type (on by default).
    pub debug: bool,
    /// `compare`: `PartialEq<Self>` on the archived type.
    pub compare: bool,
}

/// Parses `#[shared(crate = path, debug = bool, compare)]` (all optional).
pub fn parse_shared_args(args: TokenStream) -> syn::Result<SharedArgs> {
    let (mut krate, mut debug, mut compare) = (None, None, None);
    let parser = syn::meta::parser(|meta| {
        if meta.path.is_ident("crate") {
            set_once(&mut krate, crate_path(&meta)?, &meta.path)
        } else if meta.path.is_ident("debug") {
            if meta.input.is_empty() || meta.input.peek(Token![,]) {
                return Err(meta.error("`debug` takes a boolean: write `debug = false` to turn it off"));
            }
            let on: syn::LitBool = meta.value()?.parse()?;
            set_once(&mut debug, on.value, &meta.path)
        } else if meta.path.is_ident("compare") {
            if !meta.input.is_empty() && !meta.input.peek(Token![,]) {
                return Err(meta.error("`compare` takes no value: write `#[shared(compare)]`"));
            }
            set_once(&mut compare, true, &meta.path)
        } else {
            Err(meta.error("unsupported #[shared] argument; expected `crate = path`, `debug = false` or `compare`"))
        }
    });
    parser.parse2(args)?;
    Ok(SharedArgs { krate, debug: debug.unwrap_or(true), compare: compare.unwrap_or(false) })
}

/// The `path` of `crate = path`, with a hint for the common `crate = "name"`.
fn crate_path(meta: &ParseNestedMeta<'_>) -> syn::Result<Path> {
    let value = meta.value()?;
    if value.peek(LitStr) {
        let lit: LitStr = value.parse()?;
        return Err(syn::Error::new(
            lit.span(),
            format!("`crate` takes a path, not a string: write `crate = {}`", lit.value()),
        ));
    }
    value.parse()
}

fn set_once<T>(slot: &mut Option<T>, value: T, at: &Path) -> syn::Result<()> {
    if slot.is_some() {
        let name = at.get_ident().map_or_else(String::new, |i| format!(" `{i}`"));
        return Err(syn::Error::new_spanned(at, format!("duplicate{name} argument")));
    }
    *slot = Some(value);
    Ok(())
}

/// Container-level `#[schema(crate = path)]`; defaults to `::shmstate`.
pub fn container_crate(attrs: &[Attribute]) -> syn::Result<Path> {
    let mut krate = None;
    for attr in attrs.iter().filter(|a| a.path().is_ident("schema")) {
        attr.parse_nested_meta(|meta| {
            if meta.path.is_ident("crate") {
                set_once(&mut krate, crate_path(&meta)?, &meta.path)
            } else {
                Err(meta.error("unsupported #[schema] argument here; expected `crate = path`"))
            }
        })?;
    }
    Ok(krate.unwrap_or_else(default_crate))
}

/// Fields take no `#[schema(..)]` arguments (recursion needs no marking: the
/// fingerprint is computed from the described type graph).
pub fn reject_field_schema_args(attrs: &[Attribute]) -> syn::Result<()> {
    for attr in attrs.iter().filter(|a| a.path().is_ident("schema")) {
        attr.parse_nested_meta(|meta| {
            Err(meta.error(if meta.path.is_ident("recursive") {
                "`#[schema(recursive)]` is no longer needed (recursive types are fingerprinted by structure): remove it"
            } else {
                "#[schema] takes no arguments on a field"
            }))
        })?;
    }
    Ok(())
}

/// Rejects rkyv arguments in `forbidden`, each with its reason. Other rkyv
/// arguments are left to rkyv, which reports its own errors.
pub fn reject_rkyv_args(attrs: &[Attribute], forbidden: &[(&str, &str)]) -> syn::Result<()> {
    for attr in attrs.iter().filter(|a| a.path().is_ident("rkyv")) {
        // `#[rkyv]` or `#[rkyv = ..]` are malformed; rkyv reports them.
        let Ok(list) = attr.meta.require_list() else {
            continue;
        };
        for (key, span) in top_level_keys.parse2(list.tokens.clone())? {
            if let Some((_, why)) = forbidden.iter().find(|(k, _)| key == *k) {
                return Err(syn::Error::new(span, format!("`#[rkyv({key} = ..)]` {why}")));
            }
        }
    }
    Ok(())
}

/// The leading identifier of each comma-separated argument, whatever follows it
/// (`as` is a keyword, so `syn::Meta` cannot parse these lists).
fn top_level_keys(input: ParseStream<'_>) -> syn::Result<Vec<(String, Span)>> {
    let mut keys = Vec::new();
    while !input.is_empty() {
        if input.peek(Ident::peek_any) {
            let ident = Ident::parse_any(input)?;
            keys.push((ident.to_string(), ident.span()));
        }
        while !input.is_empty() && !input.peek(Token![,]) {
            input.parse::<TokenTree>()?;
        }
        if !input.is_empty() {
            input.parse::<Token![,]>()?;
        }
    }
    Ok(keys)
}

/// rkyv container arguments whose archived type is not `Archived<Self>`'s layout.
pub const FORBIDDEN_CONTAINER: &[(&str, &str)] = &[
    ("as", "is not supported by #[derive(Schema)]: the archived type is then not derived from this type's fields"),
    ("remote", "is not supported by #[derive(Schema)]: a remote derive does not implement `Archive` for this type"),
];

/// rkyv field arguments that change the field's archived layout.
pub const FORBIDDEN_FIELD: &[(&str, &str)] = &[
    ("with", "is not supported by #[derive(Schema)]: the archived layout of the field no longer follows its type; use a newtype with its own `Schema` impl"),
    ("getter", "is not supported by #[derive(Schema)] (remote derives only)"),
];
