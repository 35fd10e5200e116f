//! `shmstate.Reader`: the latest snapshot of a name, validated once per
//! generation, following replacements; waits that release the GIL.

use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use pyo3::prelude::*;
use shmstate::dynamic::{Limits, Watch};
use shmstate::{Generation, OpenError, RawReader, ReadError};

use crate::changed::AsyncWait;
use crate::errors::{raise, to_py};
use crate::pin::{forks, Object, Pin};
use crate::snapshot::Snapshot;

/// How often a read looks at the name (two `stat`s) for a replaced object.
const NAME_CHECK_INTERVAL: Duration = Duration::from_millis(100);

#[pyclass(frozen, subclass, module = "shmstate", name = "Reader")]
pub(crate) struct Reader {
    name: String,
    follow: bool,
    watch: Arc<Watch>,
    state: Mutex<Option<State>>,
    forks: u64,
}

struct State {
    /// A handle that pins nothing: the publish word, and the name checks.
    probe: RawReader,
    object: Arc<Object>,
    latest: Option<Py<Snapshot>>,
    /// The incarnation and generation `validate` last accepted.
    validated: (u64, u64),
    /// When the name was last checked (coarse monotonic clock).
    checked: Duration,
    /// Check the name at the next read (a wait found the object moved on).
    check_now: bool,
}

fn coarse_now() -> Duration {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::MonotonicCoarse);
    Duration::new(t.tv_sec as u64, t.tv_nsec as u32)
}

fn seconds(s: f64) -> PyResult<Duration> {
    Duration::try_from_secs_f64(s).map_err(|e| pyo3::exceptions::PyValueError::new_err(format!("{s} s: {e}")))
}

/// `None` as the longest wait there is (about 136 years).
fn timeout_of(t: Option<f64>) -> PyResult<Duration> {
    t.map_or(Ok(Duration::from_secs(u64::from(u32::MAX))), seconds)
}

/// The object to read under `name` now; for a lane (`NAME@<16 hex digits>`)
/// whose layout moved or that is gone, the plain name's, where its layout
/// went (docs/DEPLOYING.md "Retiring V1"), as `dynamic::Watch` follows it.
fn resolve(name: &str) -> Result<RawReader, OpenError> {
    let plain = name
        .rsplit_once('@')
        .filter(|(_, fp)| fp.len() == 16 && fp.bytes().all(|b| b.is_ascii_hexdigit()))
        .map(|(plain, _)| plain);
    let Some(plain) = plain else { return RawReader::open(name, Duration::ZERO) };
    match RawReader::open(name, Duration::ZERO) {
        Ok(raw) if !raw.moved() => Ok(raw),
        Ok(_) | Err(OpenError::NotFound { .. }) => RawReader::open(plain, Duration::ZERO),
        Err(e) => Err(e),
    }
}

fn open_object(probe: &RawReader) -> Result<Arc<Object>, OpenError> {
    let schema = probe
        .schema()
        .map_err(|e| OpenError::Corrupt { name: probe.name().into(), what: format!("stored schema: {e}") })?;
    Ok(Object::new(probe.name(), schema, probe.incarnation()))
}

impl Reader {
    fn closed() -> PyErr {
        raise("Error", "the reader is closed".into())
    }

    fn check_process(&self) -> PyResult<()> {
        if forks() != self.forks {
            return Err(raise("Error", "this Reader belongs to the parent process (fork): open one here".into()));
        }
        Ok(())
    }

    #[cold]
    fn read_slow(&self, py: Python<'_>, st: &mut State, now: Duration) -> PyResult<Py<Snapshot>> {
        if st.check_now || now.saturating_sub(st.checked) >= NAME_CHECK_INTERVAL || st.probe.moved() {
            st.checked = now;
            st.check_now = false;
            if st.probe.superseded().map_err(|e| raise("Os", format!("{}: checking the name: {e}", self.name)))? {
                if !self.follow {
                    return Err(to_py(ReadError::Replaced { name: st.probe.name().into() }));
                }
                if !self.switch(st)? {
                    // Nothing to move to yet: the last snapshot.
                    if let Some(s) = &st.latest {
                        if !s.get().is_released() {
                            return Ok(s.clone_ref(py));
                        }
                    }
                }
            }
        }
        let g = st.probe.generation().get();
        if let Some(s) = &st.latest {
            if s.get().is_latest(st.object.incarnation, g) {
                return Ok(s.clone_ref(py));
            }
        }
        let Some(raw) = st.object.take().map_err(to_py)? else {
            // Replaced between two looks: the next read follows.
            st.check_now = true;
            return match &st.latest {
                Some(s) if !s.get().is_released() => Ok(s.clone_ref(py)),
                _ => Err(to_py(ReadError::Replaced { name: st.probe.name().into() })),
            };
        };
        let pin = Pin::new(raw, Arc::clone(&st.object)).map_err(to_py)?;
        let seen = (st.object.incarnation, pin.generation);
        if st.validated != seen {
            let checked = shmstate::dynamic::validate(&st.object.schema, pin.bytes()?, Limits::default());
            if let Err(e) = checked {
                let generation = pin.generation;
                pin.abandon();
                return Err(to_py(ReadError::Invalid {
                    name: st.object.name.clone(),
                    generation,
                    reason: e.to_string(),
                }));
            }
            st.validated = seen;
        }
        let snap = Py::new(py, Snapshot::new(py, pin)?)?;
        if let Some(old) = st.latest.replace(snap.clone_ref(py)) {
            drop(old);
        }
        Ok(snap)
    }

    /// Moves to the object under the name now if it has published; whether it did.
    fn switch(&self, st: &mut State) -> PyResult<bool> {
        let next = match resolve(&self.name) {
            Ok(next) => next,
            Err(OpenError::NotFound { .. } | OpenError::NotInitialized { .. }) => return Ok(false),
            Err(e) => return Err(to_py(e)),
        };
        if next.moved() || next.incarnation() == st.object.incarnation || next.generation() == Generation::NONE {
            return Ok(false);
        }
        let object = open_object(&next).map_err(to_py)?;
        st.object.close();
        st.object = object;
        st.probe = next;
        Ok(true)
    }

    fn with_state<T>(&self, f: impl FnOnce(&mut State) -> PyResult<T>) -> PyResult<T> {
        self.check_process()?;
        match &mut *self.state.lock() {
            Some(st) => f(st),
            None => Err(Self::closed()),
        }
    }

    /// After a wait: if it followed to another object, the next read does too.
    fn after_wait(&self) {
        let inc = self.watch.incarnation();
        if let Some(st) = &mut *self.state.lock() {
            if st.object.incarnation != inc {
                st.check_now = true;
            }
        }
    }
}

#[pymethods]
impl Reader {
    /// Opens `name` (any type). `wait_for_writer`: seconds to wait for a
    /// writer that has not created it (or published) yet.
    #[new]
    #[pyo3(signature = (name, follow = true, wait_for_writer = None, writer_grace = 3.0))]
    fn new(
        py: Python<'_>,
        name: String,
        follow: bool,
        wait_for_writer: Option<f64>,
        writer_grace: f64,
    ) -> PyResult<Self> {
        let grace = seconds(writer_grace)?;
        let wait = wait_for_writer.map(seconds).transpose()?;
        let probe = py
            .detach(|| match wait {
                Some(t) => RawReader::open_when_published(&name, t, grace),
                None => RawReader::open(&name, Duration::from_secs(1)),
            })
            .map_err(to_py)?;
        let object = open_object(&probe).map_err(to_py)?;
        let watch = Watch::open(&name, follow, grace).map_err(to_py)?;
        let state = State { probe, object, latest: None, validated: (0, 0), checked: coarse_now(), check_now: false };
        Ok(Reader { name, follow, watch: Arc::new(watch), state: Mutex::new(Some(state)), forks: forks() })
    }

    /// The name it was opened with.
    #[getter]
    fn name(&self) -> &str {
        &self.name
    }

    /// Whether it follows replaced objects and moved layouts.
    #[getter]
    fn follow(&self) -> bool {
        self.follow
    }

    /// The latest published generation (0 before the first), pinning nothing.
    #[getter]
    fn generation(&self) -> PyResult<u64> {
        self.with_state(|st| Ok(st.probe.generation().get()))
    }

    /// The stored type's name (of the object read now).
    #[getter]
    fn type_name(&self) -> PyResult<String> {
        self.with_state(|st| Ok(st.object.schema.root().name.clone()))
    }

    /// Whether a live writer holds the object (one syscall).
    #[getter]
    fn writer_alive(&self) -> PyResult<bool> {
        self.with_state(|st| Ok(st.probe.writer_alive()))
    }

    /// The latest snapshot: the same `Snapshot` while the generation is
    /// unchanged; a new generation is pinned and validated once.
    fn read(&self, py: Python<'_>) -> PyResult<Py<Snapshot>> {
        let now = coarse_now();
        self.with_state(|st| {
            if let Some(s) = &st.latest {
                if s.get().is_latest(st.object.incarnation, st.probe.generation().get())
                    && !st.check_now
                    && now.saturating_sub(st.checked) < NAME_CHECK_INTERVAL
                {
                    return Ok(s.clone_ref(py));
                }
            }
            self.read_slow(py, st, now)
        })
    }

    /// Lets go of the latest snapshot (its pin goes once no view holds it).
    fn release(&self) -> PyResult<()> {
        let latest = self.with_state(|st| Ok(st.latest.take()))?;
        if let Some(s) = latest {
            s.get().release();
        }
        Ok(())
    }

    /// Blocks (GIL released) until a generation newer than `generation` is
    /// published and returns it; `shmstate.Timeout` (a `TimeoutError`) after
    /// `timeout` seconds, `WriterDead` after the grace period.
    #[pyo3(signature = (generation, timeout = None))]
    fn wait_newer(&self, py: Python<'_>, generation: u64, timeout: Option<f64>) -> PyResult<u64> {
        self.check_process()?;
        let timeout = timeout_of(timeout)?;
        let watch = Arc::clone(&self.watch);
        let got = py.detach(move || watch.wait_newer(Generation::new(generation), timeout));
        self.after_wait();
        got.map(Generation::get).map_err(to_py)
    }

    /// The native half of `changed()`: a future of the next generation with
    /// an eventfd to watch.
    fn _changed(&self, generation: u64) -> PyResult<AsyncWait> {
        self.check_process()?;
        AsyncWait::new(self.watch.changed(Generation::new(generation)))
    }

    /// Called by `changed()` once it has a generation.
    fn _after_wait(&self) {
        self.after_wait()
    }

    /// Closes it: idle handles go now, pinned ones with their snapshots.
    fn close(&self) {
        let state = self.state.lock().take();
        if let Some(st) = state {
            st.object.close();
            if forks() != self.forks {
                std::mem::forget(st.probe);
            }
            drop(st.latest);
        }
    }

    fn __enter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    #[pyo3(signature = (*_args))]
    fn __exit__(&self, _args: &Bound<'_, pyo3::types::PyTuple>) -> bool {
        self.close();
        false
    }

    fn __repr__(&self) -> String {
        format!("<shmstate.Reader {:?}>", self.name)
    }
}

impl Drop for Reader {
    fn drop(&mut self) {
        self.close();
    }
}
