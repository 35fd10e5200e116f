#[shmstate::shared]
union Bits {
    int: u32,
    float: f32,
}

#[derive(shmstate::Schema)]
union Raw {
    a: u8,
}

fn main() {}
