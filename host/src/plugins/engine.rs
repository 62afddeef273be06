//! engine: the one wasmtime `Engine` stasis uses, with epoch interruption driven by a 10 ms
//! ticker thread, so every invocation can carry a wall-clock deadline. Owns nothing else.

use std::sync::Arc;
use std::time::Duration;

use wasmtime::{Config, Engine};

/// One epoch tick. A deadline fires at most one tick late.
pub const TICK: Duration = Duration::from_millis(10);

/// The engine handle plus its ticker; the ticker stops when the last handle is dropped.
#[derive(Clone)]
pub struct EngineHandle {
    pub engine: Engine,
    _ticker: Arc<TickerGuard>,
}

struct TickerGuard(Arc<std::sync::atomic::AtomicBool>);

impl Drop for TickerGuard {
    fn drop(&mut self) {
        self.0.store(true, std::sync::atomic::Ordering::Relaxed);
    }
}

/// Build the engine: epoch interruption on, on-demand allocation (the CLI runs few
/// instances; pooling only reserves address space), parallel compilation.
pub fn new_engine() -> Result<EngineHandle, wasmtime::Error> {
    let mut cfg = Config::new();
    cfg.epoch_interruption(true).parallel_compilation(true);
    let engine = Engine::new(&cfg)?;
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let weak = engine.weak();
    let flag = stop.clone();
    std::thread::Builder::new()
        .name("stasis-epoch".into())
        .spawn(move || {
            while !flag.load(std::sync::atomic::Ordering::Relaxed) {
                std::thread::sleep(TICK);
                match weak.upgrade() {
                    Some(e) => e.increment_epoch(),
                    None => break,
                }
            }
        })
        .map_err(|e| wasmtime::format_err!("starting the epoch ticker: {e}"))?;
    Ok(EngineHandle {
        engine,
        _ticker: Arc::new(TickerGuard(stop)),
    })
}

/// Ticks to allow for `timeout` (rounded up, plus one so a deadline never fires early).
pub fn deadline_ticks(timeout: Duration) -> u64 {
    (timeout.as_millis() / TICK.as_millis()) as u64 + 1
}
