//! The decoded value tree.

/// A snapshot decoded without its Rust type: the shape of the value with the
/// names the schema gives it. `Display` prints it like Rust's `Debug` (`{:#}`
/// wraps it at 100 columns); with the `serde` feature it is `Serialize`, as
/// `#[derive(Serialize)]` on the original type would be.
///
/// The std addresses (`Ipv4Addr`, `Ipv6Addr`, `IpAddr`, `SocketAddrV4`,
/// `SocketAddrV6`, `SocketAddr`) and `Duration` are the [`Value::Struct`] and
/// [`Value::Enum`] of their archived fields (`octets`, `ip`, `port`, `secs`,
/// `nanos`…); `Display` and `Serialize` recognise them (by name, fields and
/// ranges) and print them as the std type does: `127.0.0.1:80` and `1.5s`,
/// `"127.0.0.1:80"` in JSON.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Value {
    /// `()`.
    Unit,
    /// `bool`.
    Bool(bool),
    /// `u8` to `u64`, `usize`.
    U64(u64),
    /// `i8` to `i64`, `isize`.
    I64(i64),
    /// `u128`.
    U128(u128),
    /// `i128`.
    I128(i128),
    /// `f32`.
    F32(f32),
    /// `f64`.
    F64(f64),
    /// `char`.
    Char(char),
    /// `String`, `Box<str>`, `Arc<str>`, `Rc<str>`.
    String(String),
    /// `Vec<T>`, `Box<[T]>`, `[T; N]`.
    Seq(Vec<Value>),
    /// `(A, B, …)`.
    Tuple(Vec<Value>),
    /// `Option<T>`. (`Box<T>` decodes to the boxed value itself.)
    Option(Option<Box<Value>>),
    /// `HashMap` / `BTreeMap` entries: a `BTreeMap`'s in key order, a
    /// `HashMap`'s sorted by key too (its bucket order is an accident of hashing).
    Map(Vec<(Value, Value)>),
    /// `HashSet` / `BTreeSet` elements, in the order of [`Value::Map`] keys.
    Set(Vec<Value>),
    /// A struct (also `PhantomData<T>`, a unit struct).
    Struct {
        /// The type's name as the schema spells it (`Config`, `Pair<u8>`).
        name: String,
        /// Its fields.
        fields: Fields,
    },
    /// An enum value.
    Enum {
        /// The enum's name.
        name: String,
        /// The variant's name.
        variant: String,
        /// The variant's fields.
        fields: Fields,
    },
}

/// The fields of a struct or an enum variant.
#[derive(Debug, Clone, PartialEq)]
pub enum Fields {
    /// None: `S`, `V` (also `S {}` and `V()`).
    Unit,
    /// Positional: `S(a, b)`.
    Tuple(Vec<Value>),
    /// Named, in declaration order: `S { x: a, y: b }`.
    Named(Vec<(String, Value)>),
}
