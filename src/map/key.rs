//! Map keys: every key type is stored as an order-preserving byte string, so
//! nodes compare keys as bytes whatever `K` is (LMDB's rule), and a reader
//! never decodes a key to find one.

/// A type a map can be keyed by: encoded to bytes whose order (byte-wise,
/// shorter first on a common prefix) is the order of the values.
pub trait MapKey: Ord + Sized {
    /// Names the encoding; a reader of another key type is refused.
    const KIND: &'static str;
    /// Appends the encoding of `self` to `out`.
    fn encode(&self, out: &mut Vec<u8>);
    /// The key `bytes` encode; `None` if they are no encoding of this type
    /// (bytes from shared memory are checked, never trusted).
    fn decode(bytes: &[u8]) -> Option<Self>;

    /// The encoding as a new vector.
    fn to_key_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.encode(&mut out);
        out
    }
}

macro_rules! unsigned_key {
    ($($t:ty),*) => {$(
        impl MapKey for $t {
            const KIND: &'static str = stringify!($t);
            fn encode(&self, out: &mut Vec<u8>) {
                out.extend_from_slice(&self.to_be_bytes());
            }
            fn decode(bytes: &[u8]) -> Option<Self> {
                Some(<$t>::from_be_bytes(bytes.try_into().ok()?))
            }
        }
    )*};
}

// Signed: flipping the sign bit makes two's complement order unsigned order.
macro_rules! signed_key {
    ($($t:ty => $u:ty),*) => {$(
        impl MapKey for $t {
            const KIND: &'static str = stringify!($t);
            fn encode(&self, out: &mut Vec<u8>) {
                let flipped = (*self as $u) ^ (1 << (<$u>::BITS - 1));
                out.extend_from_slice(&flipped.to_be_bytes());
            }
            fn decode(bytes: &[u8]) -> Option<Self> {
                let flipped = <$u>::from_be_bytes(bytes.try_into().ok()?);
                Some((flipped ^ (1 << (<$u>::BITS - 1))) as $t)
            }
        }
    )*};
}

unsigned_key!(u8, u16, u32, u64, u128);
signed_key!(i8 => u8, i16 => u16, i32 => u32, i64 => u64, i128 => u128);

impl MapKey for String {
    const KIND: &'static str = "String";
    fn encode(&self, out: &mut Vec<u8>) {
        // UTF-8 byte order is code point order, which is `str`'s `Ord`.
        out.extend_from_slice(self.as_bytes());
    }
    fn decode(bytes: &[u8]) -> Option<Self> {
        core::str::from_utf8(bytes).ok().map(str::to_owned)
    }
}

impl MapKey for Vec<u8> {
    const KIND: &'static str = "Vec<u8>";
    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(self);
    }
    fn decode(bytes: &[u8]) -> Option<Self> {
        Some(bytes.to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::MapKey;
    use proptest::prelude::*;

    fn order_kept<K: MapKey + Clone + core::fmt::Debug>(a: K, b: K) {
        assert_eq!(a.cmp(&b), a.to_key_bytes().cmp(&b.to_key_bytes()), "{a:?} vs {b:?}");
        assert_eq!(K::decode(&a.to_key_bytes()).as_ref(), Some(&a));
    }

    proptest! {
        #[test]
        fn encodings_keep_order_and_round_trip(a: i64, b: i64, c: u32, d: u32, s: String, t: String, x: i8, y: i8) {
            order_kept(a, b);
            order_kept(c, d);
            order_kept(s, t);
            order_kept(x, y);
        }
    }

    #[test]
    fn wrong_shapes_are_refused() {
        assert_eq!(u64::decode(&[1, 2, 3]), None);
        assert_eq!(String::decode(&[0xff]), None);
    }
}
