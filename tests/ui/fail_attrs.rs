#[shmstate::shared]
struct WithWrapper {
    #[rkyv(with = shmstate::rkyv::with::AsBox)]
    boxed: u64,
}

#[shmstate::shared]
struct UnknownField {
    #[schema(opaque)]
    a: u32,
}

#[shmstate::shared]
struct OldRecursive {
    #[schema(recursive)]
    a: Vec<u8>,
}

#[shmstate::shared]
#[schema(rename = "Other")]
struct UnknownContainer {
    a: u32,
}

fn main() {}
