//! The std types among decoded values, so that `Display` and `Serialize` can
//! print them as the original type's `Debug` and `Serialize` do.
//!
//! Two groups, told apart by what the schema can prove:
//! - std types described with a kind no derived type has (src/schema/std_impls.rs):
//!   `Box<str>`/`Arc<str>`/`Rc<str>` (a `Kind::Vec` of `u8` under that name),
//!   `HashSet`/`BTreeSet` (a map kind with `()` values under that name),
//!   `PhantomData` (an empty `Kind::Tuple`). The decoder gives them their own
//!   value ([`refine`]): a [`Value::String`], a [`Value::Set`], a unit struct.
//! - std types described as structs and enums (src/schema/std_structs.rs): the
//!   addresses and `Duration`. Their stored names have no module path, like
//!   those of user types, and the fingerprint covers nothing more, so a user
//!   type of the same name *and* description is the same type to shmstate.
//!   They stay [`Value::Struct`] / [`Value::Enum`] (their fields are what the
//!   archive holds), and [`Std::of`] recognises them by name, field names and
//!   values in range, rebuilding the std value. A user type under a std name
//!   with other fields (another count, names or order, out-of-range values)
//!   is not taken for it.
//!
//! `Range`, `RangeInclusive`, `Result` and `Option` need nothing: serde writes
//! them as the generic struct, enum and option forms do.

use core::fmt;
use core::time::Duration;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};

use super::{Fields, Value};
use crate::schema::{Kind, Primitive, SchemaDoc, TypeDesc, TypeIndex};

/// The value of a std type whose archived kind is that of another shape:
/// `v` decoded as `t`'s kind, turned into the value of the std type `t` names.
/// Anything else is returned as it is.
pub(super) fn refine(doc: &SchemaDoc, t: &TypeDesc, v: Value) -> Value {
    let is = |idx: TypeIndex, p: Primitive| doc.types.get(idx as usize).is_some_and(|e| e.kind == Kind::Primitive(p));
    match (&t.kind, v) {
        (&Kind::Vec(e), Value::Seq(items))
            if matches!(t.name.as_str(), "Box<str>" | "Arc<str>" | "Rc<str>") && is(e, Primitive::U8) =>
        {
            utf8(items)
        }
        (&Kind::HashMap(_, val), Value::Map(entries)) if t.name.starts_with("HashSet<") && is(val, Primitive::Unit) => {
            Value::Set(entries.into_iter().map(|(k, _)| k).collect())
        }
        (&Kind::BTreeMap(_, val), Value::Map(entries))
            if t.name.starts_with("BTreeSet<") && is(val, Primitive::Unit) =>
        {
            Value::Set(entries.into_iter().map(|(k, _)| k).collect())
        }
        (Kind::Tuple(fields), Value::Tuple(items))
            if fields.is_empty() && items.is_empty() && t.name.starts_with("PhantomData<") =>
        {
            Value::Struct { name: t.name.clone(), fields: Fields::Unit }
        }
        (_, v) => v,
    }
}

/// The bytes of a `str` as a string; bytes that are not UTF-8 (which no
/// writer produces) stay a sequence of numbers.
fn utf8(items: Vec<Value>) -> Value {
    let bytes: Option<Vec<u8>> =
        items.iter().map(|b| if let Value::U64(b) = b { u8::try_from(*b).ok() } else { None }).collect();
    match bytes.map(String::from_utf8) {
        Some(Ok(s)) => Value::String(s),
        _ => Value::Seq(items),
    }
}

/// A std value recognised in a decoded struct or enum.
#[derive(Clone, Copy)]
pub(super) enum Std {
    Ipv4(Ipv4Addr),
    Ipv6(Ipv6Addr),
    Ip(IpAddr),
    SockV4(SocketAddrV4),
    SockV6(SocketAddrV6),
    Sock(SocketAddr),
    Duration(Duration),
}

impl Std {
    /// The std value `v` holds, if `v` is the decoded form of one: the name,
    /// the fields (names and order) and the variants of the std description,
    /// every number in its type's range.
    pub(super) fn of(v: &Value) -> Option<Std> {
        match v {
            Value::Struct { name, fields: Fields::Named(fields) } => {
                let f = |i: usize, n: &str| fields.get(i).filter(|(name, _)| name == n).map(|(_, v)| v);
                let ok = |len: usize| fields.len() == len;
                match name.as_str() {
                    "Ipv4Addr" if ok(1) => octets::<4>(f(0, "octets")?).map(|o| Std::Ipv4(o.into())),
                    "Ipv6Addr" if ok(1) => octets::<16>(f(0, "octets")?).map(|o| Std::Ipv6(o.into())),
                    "SocketAddrV4" if ok(2) => {
                        let Std::Ipv4(ip) = Std::of(f(0, "ip")?)? else { return None };
                        Some(Std::SockV4(SocketAddrV4::new(ip, uint(f(1, "port")?)?)))
                    }
                    "SocketAddrV6" if ok(4) => {
                        let Std::Ipv6(ip) = Std::of(f(0, "ip")?)? else { return None };
                        let (port, flowinfo, scope) = (f(1, "port")?, f(2, "flowinfo")?, f(3, "scope_id")?);
                        Some(Std::SockV6(SocketAddrV6::new(ip, uint(port)?, uint(flowinfo)?, uint(scope)?)))
                    }
                    "Duration" if ok(2) => {
                        let (secs, nanos): (u64, u32) = (uint(f(0, "secs")?)?, uint(f(1, "nanos")?)?);
                        // `Duration::new` carries nanos past a second into
                        // the seconds (and panics past u64::MAX): a stored
                        // `Duration` never has them.
                        (nanos < 1_000_000_000).then(|| Std::Duration(Duration::new(secs, nanos)))
                    }
                    _ => None,
                }
            }
            Value::Enum { name, variant, fields: Fields::Tuple(items) }
                if items.len() == 1 && matches!(name.as_str(), "IpAddr" | "SocketAddr") =>
            {
                match (name.as_str(), variant.as_str(), Std::of(&items[0])?) {
                    ("IpAddr", "V4", Std::Ipv4(a)) => Some(Std::Ip(IpAddr::V4(a))),
                    ("IpAddr", "V6", Std::Ipv6(a)) => Some(Std::Ip(IpAddr::V6(a))),
                    ("SocketAddr", "V4", Std::SockV4(a)) => Some(Std::Sock(SocketAddr::V4(a))),
                    ("SocketAddr", "V6", Std::SockV6(a)) => Some(Std::Sock(SocketAddr::V6(a))),
                    _ => None,
                }
            }
            _ => None,
        }
    }

    /// Whether serde writes it as a string (in human-readable formats such
    /// as JSON), so it can be a JSON object key.
    #[cfg(feature = "serde")]
    pub(super) fn is_string(self) -> bool {
        !matches!(self, Std::Duration(_))
    }
}

/// `Debug` of the std value.
impl fmt::Debug for Std {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Std::Ipv4(a) => a.fmt(f),
            Std::Ipv6(a) => a.fmt(f),
            Std::Ip(a) => a.fmt(f),
            Std::SockV4(a) => a.fmt(f),
            Std::SockV6(a) => a.fmt(f),
            Std::Sock(a) => a.fmt(f),
            Std::Duration(d) => d.fmt(f),
        }
    }
}

/// `Serialize` of the std value.
#[cfg(feature = "serde")]
impl serde::Serialize for Std {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Std::Ipv4(a) => a.serialize(s),
            Std::Ipv6(a) => a.serialize(s),
            Std::Ip(a) => a.serialize(s),
            Std::SockV4(a) => a.serialize(s),
            Std::SockV6(a) => a.serialize(s),
            Std::Sock(a) => a.serialize(s),
            Std::Duration(d) => d.serialize(s),
        }
    }
}

/// An unsigned number that fits `T`.
fn uint<T: TryFrom<u64>>(v: &Value) -> Option<T> {
    match v {
        Value::U64(n) => T::try_from(*n).ok(),
        _ => None,
    }
}

/// `[u8; N]`, decoded as a sequence of `N` numbers.
fn octets<const N: usize>(v: &Value) -> Option<[u8; N]> {
    let Value::Seq(items) = v else { return None };
    let mut out = [0u8; N];
    if items.len() != N {
        return None;
    }
    for (o, item) in out.iter_mut().zip(items) {
        *o = uint(item)?;
    }
    Some(out)
}
