//! FNV-1a 64 hashing used by fingerprints (see [`SchemaDoc::fingerprint`]), and
//! the hash of the rkyv format. Not collision resistant against an adversary:
//! it detects mistakes; bytecheck guards memory safety.
//!
//! [`SchemaDoc::fingerprint`]: super::SchemaDoc::fingerprint

/// FNV-1a 64 of `bytes`, continuing from `h`.
pub const fn fnv1a64_from(mut h: u64, bytes: &[u8]) -> u64 {
    let mut i = 0;
    while i < bytes.len() {
        h ^= bytes[i] as u64;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
        i += 1;
    }
    h
}

/// FNV-1a 64 of `bytes`.
pub const fn fnv1a64(bytes: &[u8]) -> u64 {
    fnv1a64_from(0xcbf2_9ce4_8422_2325, bytes)
}

/// Mixes `x` into `h`.
pub const fn mix(h: u64, x: u64) -> u64 {
    fnv1a64_from(h, &x.to_le_bytes())
}

/// Hash of the rkyv format in effect (version, pointer width, alignment,
/// endianness), measured from the types themselves, so it is right whatever
/// features were unified in the final build.
pub const RKYV_FORMAT: u64 = {
    use core::mem::{align_of, size_of};
    let ptr_width = size_of::<rkyv::Archived<usize>>() as u64;
    let align32 = align_of::<rkyv::Archived<u32>>() as u64;
    let probe = <rkyv::Archived<u32>>::from_native(1).to_native();
    // rend stores little-endian under the `little_endian` feature; the archived
    // u32 of 1 has its low byte first exactly then.
    let little = rkyv::rend::u32_le::from_native(probe).to_native() == 1
        && size_of::<rkyv::Archived<u32>>() == size_of::<rkyv::rend::u32_le>();
    let mut h = fnv1a64(b"rkyv-0.8");
    h = mix(h, ptr_width);
    h = mix(h, align32);
    h = mix(h, little as u64);
    h
};

/// Mixes a length-prefixed byte string into `h`, so that consecutive names stay
/// unambiguous (`"ab","c"` differs from `"a","bc"`).
pub const fn mix_str(h: u64, s: &str) -> u64 {
    fnv1a64_from(mix(h, s.len() as u64), s.as_bytes())
}
