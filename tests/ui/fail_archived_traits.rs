#[shmstate::shared(debug)]
struct NoValue(u8);

#[shmstate::shared(debug = "no")]
struct NotABool(u8);

#[shmstate::shared(compare = true)]
struct CompareValue(u8);

#[shmstate::shared(compare, compare)]
struct CompareTwice(u8);

#[shmstate::shared(compare)]
#[rkyv(compare(PartialOrd))]
struct OtherCompare(u8);

fn main() {}
