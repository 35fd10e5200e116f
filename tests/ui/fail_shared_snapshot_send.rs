// A `SharedSnapshot` keeps its thread's pin: it must not move to another thread.

#[shmstate::shared]
struct Config {
    port: u16,
}

fn needs_send<T: Send>(_: T) {}

fn main() {
    let shared = shmstate::SharedReader::<Config>::open("never-opened").unwrap();
    let snap = shared.load().unwrap();
    needs_send(snap);
}
