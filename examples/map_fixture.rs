//! The Rust side of the map tests of the Python package and the C library
//! (python/tests/test_map.py, capi/tests): a `MapWriter` driven line by line
//! on stdin, so that the tests need no sleeps.
//!
//! ```text
//! map_fixture serve NAME N      # MapWriter<String, Item>: keys "k0000".. of N items, committed
//! map_fixture serve-int NAME N  # MapWriter<i64, Item>: keys -N/2 .. N/2
//!     set KEY ID                #   stages KEY = item(ID)
//!     del KEY                   #   stages the removal of KEY
//!     commit                    #   -> "committed G"
//!     quit                      #   removes NAME and exits
//! ```
//! Every line it prints after "committed G" of its first commit answers one command.

use std::io::{BufRead, Write};
use std::str::FromStr;

use shmstate::map::{MapKey, MapWriter};

#[shmstate::shared]
#[derive(Debug, Clone)]
pub struct Item {
    pub id: u64,
    pub name: String,
    pub tags: Vec<String>,
    pub score: Option<f64>,
}

fn item(id: u64) -> Item {
    Item {
        id,
        name: format!("item {id}"),
        tags: (0..id % 3).map(|t| format!("t{t}")).collect(),
        score: (id % 2 == 0).then_some(id as f64 / 2.0),
    }
}

fn serve<K: MapKey + FromStr>(name: &str, keys: impl Iterator<Item = (K, u64)>) {
    let mut w = MapWriter::<K, Item>::create(name).expect("create the map");
    w.extend(keys.map(|(k, id)| (k, item(id))));
    let g = w.commit().expect("commit");
    println!("committed {}", g.get());
    for line in std::io::stdin().lock().lines() {
        let line = line.expect("stdin");
        let mut words = line.split_whitespace();
        match (words.next(), words.next(), words.next()) {
            (Some("set"), Some(k), Some(id)) => {
                let Ok(k) = k.parse() else { panic!("bad key {k}") };
                w.insert(k, item(id.parse().expect("an id")));
                println!("staged");
            }
            (Some("del"), Some(k), None) => {
                let Ok(k) = k.parse() else { panic!("bad key {k}") };
                w.remove(&k);
                println!("staged");
            }
            (Some("commit"), None, None) => println!("committed {}", w.commit().expect("commit").get()),
            (Some("quit"), None, None) => break,
            _ => panic!("unknown command {line:?}"),
        }
        std::io::stdout().flush().expect("stdout");
    }
    drop(w);
    let _ = shmstate::remove(name);
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (what, name, n) = match args.as_slice() {
        [_, what, name, n] => (what.as_str(), name.as_str(), n.parse::<i64>().expect("a count")),
        _ => panic!("usage: map_fixture serve|serve-int NAME N"),
    };
    match what {
        "serve" => serve::<String>(name, (0..n).map(|i| (format!("k{i:04}"), i as u64))),
        "serve-int" => serve::<i64>(name, (-n / 2..n - n / 2).map(|i| (i, i.unsigned_abs()))),
        _ => panic!("unknown mode {what}"),
    }
}
