//! Evidence for docs/DEPLOYING.md ("Appending fields: why not in place"):
//! can a reader of V1 read, in place, a snapshot of V2 = V1 + fields
//! appended to the root? With rkyv 0.8, not through `access`: the root is
//! found at the END of the buffer (`len - size_of::<Archived<V1>>()`),
//! which for V2 bytes lands inside V2's root, on the appended fields.
#![cfg(not(miri))]

use rkyv::rancor::Error;

mod v1 {
    #[shmstate::shared]
    #[derive(Debug, Clone, PartialEq)]
    pub struct Conf {
        pub port: u16,
        pub hosts: Vec<String>,
    }
}

mod v2 {
    #[shmstate::shared]
    #[derive(Debug, Clone, PartialEq)]
    pub struct Conf {
        pub port: u16,
        pub hosts: Vec<String>,
        pub weight: u64,
        pub zone: String,
    }
}

fn v2_bytes() -> rkyv::util::AlignedVec {
    let v = v2::Conf { port: 8080, hosts: vec!["a".into(), "b".into()], weight: 7, zone: "eu-west-1".into() };
    rkyv::to_bytes::<Error>(&v).unwrap()
}

#[test]
fn the_prefix_fields_keep_their_offsets() {
    // The archived structs are repr(C): appended fields keep the prefix's offsets.
    assert_eq!(core::mem::offset_of!(v1::ArchivedConf, port), core::mem::offset_of!(v2::ArchivedConf, port));
    assert_eq!(core::mem::offset_of!(v1::ArchivedConf, hosts), core::mem::offset_of!(v2::ArchivedConf, hosts));
    assert!(core::mem::size_of::<v2::ArchivedConf>() > core::mem::size_of::<v1::ArchivedConf>());
}

#[test]
fn an_old_reader_does_not_find_the_new_root_by_itself() {
    let bytes = v2_bytes();
    // `access` takes the last size_of::<ArchivedV1>() bytes as the root: the
    // tail of V2's root (its appended fields), not its start.
    let read = rkyv::access::<v1::ArchivedConf, Error>(&bytes);
    assert!(read.is_err(), "V1 read V2 bytes in place: {read:?}");
}

#[test]
fn at_the_root_position_of_the_writer_the_prefix_reads() {
    // Only a reader told where the writer's root starts (its size, which
    // the shm header does not carry) could read the prefix in place.
    let bytes = v2_bytes();
    let pos = bytes.len() - core::mem::size_of::<v2::ArchivedConf>();
    let a = rkyv::api::high::access_pos::<v1::ArchivedConf, Error>(&bytes, pos).unwrap();
    assert_eq!((a.port.to_native(), a.hosts.len()), (8080, 2));
}
