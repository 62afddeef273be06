//! report: reads what test blocks leave behind (JUnit XML) and renders the plain-text
//! summaries printed at the end of a test run (pool tables, per-test-block JUnit table).
//!
//! Pure code with no process handling and no knowledge of the scheduler: the runner hands it
//! paths and rows. It must not read the delivery file or write records; the run record is
//! owned by [`crate::runner`].

pub mod junit;
pub mod merge;
pub mod summary;

pub use junit::{JunitCounts, JunitError, parse_junit};
pub use summary::{
    PoolRow, PoolRowStatus, TestRow, human_duration, render_pool_summary, render_test_summary,
};
