#[shmstate::shared(crate = "shmstate")]
struct Quoted {
    a: u32,
}

#[shmstate::shared(krate = shmstate)]
struct Misspelt {
    a: u32,
}

#[shmstate::shared(crate = shmstate, crate = shmstate)]
struct Twice {
    a: u32,
}

fn main() {}
