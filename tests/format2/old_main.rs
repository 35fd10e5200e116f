//! The format 2 compatibility test's roles as a program of the last build
//! that wrote format 2 (`tests/format2.rs` builds it from that commit).

mod driver;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    driver::run(&args, |opts| opts);
}
