//! The publish / pin protocol and `layout::Region` on heap memory, with real
//! threads and real rkyv bytes: runnable under Miri (`scripts/miri.sh`), whose
//! data-race detector checks that the writer's plain (non-atomic) writes into a
//! slot never race with a pinned reader's plain reads (docs/DESIGN.md, invariants 1
//! and 2), and that nothing here is UB (alignment, provenance, bounds).
//!
//! The writer mirrors `Writer::publish` (scan pins after a SeqCst fence, pick a
//! slot that is neither current nor pinned, serialize with `SlotWriter` straight
//! into the slot, seal, publish one word); readers mirror `RawReader::pin_latest`
//! + `Reader::read_slow` (pin, check the slot entry, `rkyv::access`).
#![allow(unsafe_code)]

use std::alloc::{alloc_zeroed, dealloc, Layout};

use rkyv::rancor::Error;

use crate::layout::{self, slot_state, Region, FIXED_HEADER};
use crate::protocol::{self, Pinned};
use crate::slot_writer::SlotWriter;
use crate::sync::Ordering::{Acquire, Relaxed, Release};

/// A zeroed, 64-aligned heap buffer standing in for a mapping.
struct HeapBuf {
    ptr: *mut u8,
    layout: Layout,
}

// SAFETY: the buffer is only accessed through `Region`, i.e. through atomics or
// through slot bytes whose exclusive use the protocol under test arbitrates.
unsafe impl Sync for HeapBuf {}
// SAFETY: as above; the allocation is owned and freed once, in `Drop`.
unsafe impl Send for HeapBuf {}

impl HeapBuf {
    fn new(len: usize) -> Self {
        let layout = Layout::from_size_align(len, 64).unwrap();
        // SAFETY: `layout` has a non-zero size.
        let ptr = unsafe { alloc_zeroed(layout) };
        assert!(!ptr.is_null());
        HeapBuf { ptr, layout }
    }

    fn region(&self) -> Region<'_> {
        // SAFETY:
        // - `ptr` is valid for reads and writes of `layout.size()` bytes while
        //   `self` lives, which the region's lifetime borrows;
        // - `ptr` is 64-aligned (`layout`).
        unsafe { Region::new(self.ptr, self.layout.size() as u64) }
    }
}

impl Drop for HeapBuf {
    fn drop(&mut self) {
        // SAFETY: allocated in `new` with this layout, freed once.
        unsafe { dealloc(self.ptr, self.layout) }
    }
}

#[derive(rkyv::Archive, rkyv::Serialize, Debug, PartialEq)]
struct Val {
    gen: u64,
    words: Vec<u64>,
    name: String,
}

impl Val {
    fn new(g: u64) -> Self {
        Val { gen: g, words: vec![g; (g % 4 + 1) as usize], name: format!("gen {g}") }
    }
}

fn check(a: &ArchivedVal, g: u64) {
    assert_eq!(a.gen, g, "torn view");
    assert!(a.words.iter().all(|w| *w == g), "torn view: words of {g}");
    assert_eq!(a.name.as_str(), format!("gen {g}"), "torn view: name of {g}");
}

const SLOTS: u32 = READERS + 2; // one per reader + current + the one being written
const CAP: u64 = 512;
const DATA: u64 = 4096;
const READERS: u32 = 2;

/// A data segment (header + slot table + slots) and a reader table on the heap.
struct Heap {
    data: HeapBuf,
    readers: HeapBuf,
}

impl Heap {
    fn new() -> Self {
        let heap = Heap {
            data: HeapBuf::new((DATA + SLOTS as u64 * CAP) as usize),
            readers: HeapBuf::new(layout::reader_table_size(READERS, SLOTS) as usize),
        };
        let region = heap.data.region();
        let h = region.header().unwrap();
        h.max_slots.store(SLOTS, Relaxed);
        h.slot_count.store(SLOTS, Relaxed);
        h.data_start.store(DATA, Relaxed);
        for k in 0..SLOTS {
            let e = region.slot(k).unwrap();
            e.offset.store(DATA + k as u64 * CAP, Relaxed);
            e.capacity.store(CAP, Relaxed);
        }
        let rh = heap.readers.region().readers_header().unwrap();
        rh.capacity.store(READERS, Relaxed);
        rh.high_water.store(READERS, Relaxed);
        rh.count_slots.store(SLOTS, Relaxed);
        heap
    }

    /// One publish, as `Writer::publish` does it.
    fn publish(&self, g: u64, pinned: &mut [bool]) {
        let region = self.data.region();
        let rt = self.readers.region();
        let h = region.header().unwrap();
        let current = protocol::slot_of(h.current.load(Relaxed));
        // The writer's two ways of finding a free slot, alternately: by the
        // pin counts (fast path) and by the pins (slow path).
        if g % 2 == 0 {
            protocol::scan_counts(|k| rt.pin_count(READERS, SLOTS, k), pinned);
        } else {
            pinned.iter_mut().for_each(|p| *p = false);
            let high_water = &rt.readers_header().unwrap().high_water;
            protocol::scan_pins(high_water, READERS, |i| rt.reader(i).map(|r| &r.pin), pinned);
        }
        let k = (0..SLOTS).find(|&k| k != current && !pinned[k as usize]).expect("a free slot");
        let e = region.slot(k).unwrap();
        let (offset, capacity) = (e.offset.load(Relaxed), e.capacity.load(Relaxed));
        e.state.store(slot_state::WRITING, Relaxed);
        let ptr = region.range_ptr(offset, capacity).unwrap();
        // SAFETY: slot `k` is neither current nor pinned (its count, or every
        // pin, loaded after the SeqCst fence in `scan_counts` / `scan_pins`),
        // and this thread is the only writer.
        let out = unsafe { SlotWriter::new(ptr, capacity as usize) };
        let out = rkyv::api::high::to_bytes_in::<_, Error>(&Val::new(g), out).unwrap();
        assert!(out.fitted());
        e.len.store(out.len() as u64, Relaxed);
        e.gen.store(g, Relaxed);
        // SYNC(seal): as in `Writer::publish`.
        e.state.store(slot_state::SEALED, Release);
        protocol::reset_count(rt.pin_count(READERS, SLOTS, k).unwrap(), g);
        protocol::publish(&h.current, protocol::word(g, k));
    }

    /// One read, as `RawReader::pin_latest` + `Reader::read_slow` do it; the
    /// view is checked twice with a yield in between (it must not change).
    fn read(&self, entry: u32) -> Option<u64> {
        let region = self.data.region();
        let h = region.header().unwrap();
        let rt = self.readers.region();
        let pin = &rt.reader(entry).unwrap().pin;
        let Pinned::Word(w) = protocol::pin_current(&h.current, pin, |k| rt.pin_count(READERS, SLOTS, k)) else {
            return None;
        };
        let (g, k) = (protocol::generation_of(w), protocol::slot_of(w));
        let e = region.slot(k).unwrap();
        assert_eq!(e.state.load(Relaxed), slot_state::SEALED);
        assert_eq!(e.gen.load(Relaxed), g);
        // SAFETY: the slot is pinned and re-checked (protocol.rs): the writer
        // does not write it until this thread changes its pin.
        let bytes = unsafe { region.bytes(e.offset.load(Relaxed), e.len.load(Relaxed)) }.unwrap();
        let a = rkyv::access::<ArchivedVal, Error>(bytes).unwrap();
        check(a, g);
        std::thread::yield_now();
        check(a, g);
        Some(g)
    }
}

#[cfg(miri)]
const GENS: u64 = 12;
#[cfg(not(miri))]
const GENS: u64 = 3000;

/// A writer thread publishing into `READERS + 2` slots while two readers pin, validate
/// and re-read: no torn view, no data race (Miri), generations never go back.
#[test]
fn heap_publish_and_pinned_reads_race_free() {
    let heap = Heap::new();
    let mut pinned = vec![false; SLOTS as usize];
    heap.publish(1, &mut pinned);
    std::thread::scope(|s| {
        for entry in 0..READERS {
            let heap = &heap;
            s.spawn(move || {
                let mut last = 0;
                for _ in 0..GENS {
                    if let Some(g) = heap.read(entry) {
                        assert!(g >= last, "generation went back");
                        last = g;
                    }
                }
                let rt = heap.readers.region();
                protocol::unpin(&rt.reader(entry).unwrap().pin, |k| rt.pin_count(READERS, SLOTS, k));
            });
        }
        let heap = &heap;
        s.spawn(move || {
            let mut pinned = vec![false; SLOTS as usize];
            for g in 2..=GENS {
                heap.publish(g, &mut pinned);
            }
        });
    });
    let h = heap.data.region();
    assert_eq!(protocol::generation_of(h.header().unwrap().current.load(Acquire)), GENS);
}

/// `Region` only hands out in-bounds, aligned views.
#[test]
fn heap_region_bounds() {
    let buf = HeapBuf::new(4096);
    let r = buf.region();
    assert!(r.header().is_some());
    assert!(r.slot((4096 - FIXED_HEADER as u32) / 64 - 1).is_some());
    assert!(r.slot((4096 - FIXED_HEADER as u32) / 64).is_none());
    assert!(r.slot(u32::MAX).is_none());
    assert!(r.range_ptr(4096, 0).is_some());
    assert!(r.range_ptr(4096, 1).is_none());
    assert!(r.range_ptr(u64::MAX, 2).is_none());
    // SAFETY: nothing writes the buffer during this test.
    unsafe {
        assert_eq!(r.bytes(10, 6).unwrap(), &[0; 6]);
        assert!(r.bytes(4000, 97).is_none());
    }
    assert!(r.reader(62).is_some());
    assert!(r.reader(63).is_none());
    let small = HeapBuf::new(64);
    assert!(small.region().header().is_none());
}

/// The stored schema description decodes, and every truncation or bit flip of
/// it is an error or a valid document, never a panic.
#[test]
fn heap_schema_decode_of_bad_bytes() {
    use crate::schema::{schema_of, SchemaDoc};
    let doc = schema_of::<std::collections::HashMap<String, Vec<(u32, Option<String>)>>>();
    let bytes = doc.encode();
    let back = SchemaDoc::decode(&bytes).expect("round trip");
    assert_eq!(back.root().name, doc.root().name);
    let step = if cfg!(miri) { 37 } else { 1 };
    for cut in (0..bytes.len()).step_by(step) {
        let _ = SchemaDoc::decode(&bytes[..cut]);
    }
    for i in (0..bytes.len() * 8).step_by(step * 3) {
        let mut b = bytes.clone();
        b[i / 8] ^= 1 << (i % 8);
        if let Ok(d) = SchemaDoc::decode(&b) {
            let _ = format!("{d}");
        }
    }
}
