//! The key types a map records by name (`MapKey::KIND`), for readers without
//! the Rust type: a key's encoding decoded to a [`Value`], and keys or key
//! prefixes given as text or as a `Value` encoded.

use crate::dynamic::Value;
use crate::map::key::MapKey;

/// The key type of a map, as its root record names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum MapKeyKind {
    /// An unsigned integer of this many bits (8 to 128).
    Unsigned(u32),
    /// A signed integer of this many bits (8 to 128).
    Signed(u32),
    /// `String`.
    String,
    /// `Vec<u8>`.
    Bytes,
}

impl MapKeyKind {
    /// The kind `MapKey::KIND` names; `None` for a name this version does not know.
    pub fn from_name(kind: &str) -> Option<Self> {
        Some(match kind {
            "String" => MapKeyKind::String,
            "Vec<u8>" => MapKeyKind::Bytes,
            _ => {
                let (signed, bits) = match kind.as_bytes().first()? {
                    b'u' => (false, &kind[1..]),
                    b'i' => (true, &kind[1..]),
                    _ => return None,
                };
                let bits = match bits {
                    "8" => 8,
                    "16" => 16,
                    "32" => 32,
                    "64" => 64,
                    "128" => 128,
                    _ => return None,
                };
                if signed {
                    MapKeyKind::Signed(bits)
                } else {
                    MapKeyKind::Unsigned(bits)
                }
            }
        })
    }

    /// The name (`MapKey::KIND`): `u64`, `String`, `Vec<u8>`…
    pub fn name(self) -> String {
        match self {
            MapKeyKind::Unsigned(bits) => format!("u{bits}"),
            MapKeyKind::Signed(bits) => format!("i{bits}"),
            MapKeyKind::String => "String".into(),
            MapKeyKind::Bytes => "Vec<u8>".into(),
        }
    }

    /// The key an encoding stands for (`U64`/`I64`, `U128`/`I128`, `String`,
    /// a `Seq` of bytes); `None` if the bytes are no encoding of this kind.
    pub fn decode(self, bytes: &[u8]) -> Option<Value> {
        Some(match self {
            MapKeyKind::Unsigned(bits) => {
                if bytes.len() * 8 != bits as usize {
                    return None;
                }
                let v = bytes.iter().fold(0u128, |acc, &b| (acc << 8) | b as u128);
                if bits == 128 {
                    Value::U128(v)
                } else {
                    Value::U64(v as u64)
                }
            }
            MapKeyKind::Signed(bits) => {
                if bytes.len() * 8 != bits as usize {
                    return None;
                }
                let v = bytes.iter().fold(0u128, |acc, &b| (acc << 8) | b as u128);
                // Undo the sign-bit flip, then sign-extend from `bits`.
                let v = (v ^ (1u128 << (bits - 1))) << (128 - bits);
                let v = (v as i128) >> (128 - bits);
                if bits == 128 {
                    Value::I128(v)
                } else {
                    Value::I64(v as i64)
                }
            }
            MapKeyKind::String => Value::String(String::decode(bytes)?),
            MapKeyKind::Bytes => Value::Seq(bytes.iter().map(|&b| Value::U64(b as u64)).collect()),
        })
    }

    /// The encoding of the key written as text: a decimal integer, the
    /// string itself, or hex digits for bytes (`0x` optional).
    pub fn parse(self, text: &str) -> Result<Vec<u8>, String> {
        match self {
            MapKeyKind::Unsigned(_) => {
                let v: u128 = text.trim().parse().map_err(|e| format!("{text:?} is no {}: {e}", self.name()))?;
                self.encode_unsigned(v)
            }
            MapKeyKind::Signed(_) => {
                let v: i128 = text.trim().parse().map_err(|e| format!("{text:?} is no {}: {e}", self.name()))?;
                self.encode_signed(v)
            }
            MapKeyKind::String => Ok(text.as_bytes().to_vec()),
            MapKeyKind::Bytes => parse_hex(text),
        }
    }

    /// The encoding of the prefix written as text (`String` and `Vec<u8>`
    /// keys only: an integer's encoding has no meaningful prefix).
    pub fn parse_prefix(self, text: &str) -> Result<Vec<u8>, String> {
        match self {
            MapKeyKind::String | MapKeyKind::Bytes => self.parse(text),
            _ => Err(format!("a prefix needs String or Vec<u8> keys; this map's keys are {}", self.name())),
        }
    }

    /// The encoding of `key` (an integer `Value` in range, a `String`, a
    /// `Seq` of bytes), as [`decode`](Self::decode) gives them.
    pub fn encode(self, key: &Value) -> Result<Vec<u8>, String> {
        let wrong = || format!("a {} key, not {key}", self.name());
        let int = matches!(self, MapKeyKind::Unsigned(_) | MapKeyKind::Signed(_));
        match (self, key) {
            (_, Value::U64(v)) if int => self.encode_int(*v as i128),
            (_, Value::I64(v)) if int => self.encode_int(*v as i128),
            (_, Value::I128(v)) if int => self.encode_int(*v),
            (MapKeyKind::Unsigned(_), Value::U128(v)) => self.encode_unsigned(*v),
            (MapKeyKind::Signed(_), Value::U128(v)) => {
                self.encode_signed(i128::try_from(*v).map_err(|_| format!("{v} is out of range of {}", self.name()))?)
            }
            (MapKeyKind::String, Value::String(s)) => Ok(s.as_bytes().to_vec()),
            (MapKeyKind::Bytes, Value::Seq(items)) => items
                .iter()
                .map(|b| match b {
                    Value::U64(b) => u8::try_from(*b).map_err(|_| wrong()),
                    _ => Err(wrong()),
                })
                .collect(),
            _ => Err(wrong()),
        }
    }

    fn encode_int(self, v: i128) -> Result<Vec<u8>, String> {
        match self {
            MapKeyKind::Unsigned(_) => {
                self.encode_unsigned(u128::try_from(v).map_err(|_| format!("{v} is out of range of {}", self.name()))?)
            }
            _ => self.encode_signed(v),
        }
    }

    fn encode_unsigned(self, v: u128) -> Result<Vec<u8>, String> {
        let MapKeyKind::Unsigned(bits) = self else { return Err(format!("{v}: no {} key", self.name())) };
        if bits < 128 && v >> bits != 0 {
            return Err(format!("{v} is out of range of {}", self.name()));
        }
        Ok(v.to_be_bytes()[16 - bits as usize / 8..].to_vec())
    }

    fn encode_signed(self, v: i128) -> Result<Vec<u8>, String> {
        let MapKeyKind::Signed(bits) = self else { return self.encode_unsigned(v as u128) };
        let (min, max) =
            if bits == 128 { (i128::MIN, i128::MAX) } else { (-(1i128 << (bits - 1)), (1i128 << (bits - 1)) - 1) };
        if v < min || v > max {
            return Err(format!("{v} is out of range of {}", self.name()));
        }
        let flipped = (v as u128) ^ (1u128 << (bits - 1));
        Ok(flipped.to_be_bytes()[16 - bits as usize / 8..].to_vec())
    }
}

fn parse_hex(text: &str) -> Result<Vec<u8>, String> {
    let digits = text.trim().strip_prefix("0x").unwrap_or(text.trim());
    if digits.len() % 2 != 0 {
        return Err(format!("{text:?}: bytes are written as an even number of hex digits"));
    }
    (0..digits.len())
        .step_by(2)
        .map(|i| {
            digits
                .get(i..i + 2)
                .and_then(|d| u8::from_str_radix(d, 16).ok())
                .ok_or_else(|| format!("{text:?} is no hex"))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn same<K: MapKey>(k: K, text: &str) {
        let kind = MapKeyKind::from_name(K::KIND).unwrap();
        assert_eq!(kind.name(), K::KIND);
        let bytes = k.to_key_bytes();
        assert_eq!(kind.parse(text).unwrap(), bytes, "{text}");
        let v = kind.decode(&bytes).unwrap();
        assert_eq!(kind.encode(&v).unwrap(), bytes, "{v}");
    }

    #[test]
    fn every_kind_agrees_with_map_key() {
        same(7u8, "7");
        same(65_000u16, "65000");
        same(u64::MAX, "18446744073709551615");
        same(u128::MAX, "340282366920938463463374607431768211455");
        same(-3i8, "-3");
        same(i16::MIN, "-32768");
        same(-1i32, "-1");
        same(i64::MIN, "-9223372036854775808");
        same(i128::MIN + 1, "-170141183460469231731687303715884105727");
        same("héllo".to_string(), "héllo");
        same(vec![0u8, 0xab, 0xff], "0x00abff");
        assert_eq!(MapKeyKind::from_name("i32").unwrap().decode(&(-5i32).to_key_bytes()), Some(Value::I64(-5)));
    }

    #[test]
    fn bad_keys_are_refused() {
        let u8k = MapKeyKind::Unsigned(8);
        assert!(u8k.parse("256").is_err());
        assert!(u8k.parse("-1").is_err());
        assert!(u8k.encode(&Value::I64(-1)).is_err());
        assert!(u8k.decode(&[1, 2]).is_none());
        assert!(MapKeyKind::Signed(8).parse("128").is_err());
        assert!(MapKeyKind::Bytes.parse("abc").is_err());
        assert!(MapKeyKind::Bytes.parse("zz").is_err());
        assert!(MapKeyKind::String.decode(&[0xff]).is_none());
        assert!(MapKeyKind::Unsigned(64).parse_prefix("1").is_err());
        assert_eq!(MapKeyKind::Unsigned(128).encode(&Value::I128(5)).unwrap(), 5u128.to_key_bytes());
        assert_eq!(MapKeyKind::Signed(16).encode(&Value::U128(5)).unwrap(), 5i16.to_key_bytes());
        assert!(MapKeyKind::Signed(16).encode(&Value::U64(1 << 15)).is_err());
        assert!(MapKeyKind::String.encode(&Value::U64(1)).is_err());
        assert_eq!(MapKeyKind::from_name("u7"), None);
        assert_eq!(MapKeyKind::from_name(""), None);
    }
}
