#[shmstate::shared]
fn not_a_type() {}

fn main() {}
