//! ferry's domain: configuration, tag policy, the release state machine, which
//! containers a release changes, and the release engine that drives AWS through
//! the small traits in [`ports`]. Nothing here performs I/O or knows an AWS type;
//! adapters in `ferry-aws` implement the ports.

pub mod config;
pub mod decide;
pub mod engine;
pub mod image;
pub mod metrics;
pub mod names;
pub mod ports;
pub mod release;
pub mod rollback;
pub mod tag_policy;
