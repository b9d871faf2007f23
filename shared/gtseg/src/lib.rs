//! Ground Truth semantic-segmentation, the domain: wire types, labels, the mask codec, the
//! fusion rules, pre-annotation, batch consolidation and object stores. The Lambda binaries and
//! the `gtseg` tool are thin shells around [`service::Service`].
//!
//! Data flows one way: event JSON → [`event`] wire types → [`pre`] / [`consolidate`]
//! (using [`labels`], [`raster`], [`mask`], [`fusion`]) → [`store`].

pub mod config;
pub mod consolidate;
pub mod event;
pub mod fusion;
pub mod labels;
pub mod mask;
pub mod pre;
pub mod raster;
pub mod service;
pub mod store;
pub mod uri;

pub use config::Config;
pub use service::{EventKind, Service, ServiceError};
#[cfg(feature = "s3")]
pub use store::S3Store;
pub use store::{AnyStore, Guarded, LocalStore, ObjectStore};

/// An error and all its sources, joined with `: ` (a source whose text is already included is
/// not repeated). This is the one-line message users see in Lambda errors and on stderr.
pub fn report(err: &dyn std::error::Error) -> String {
    let mut out = err.to_string();
    let mut src = err.source();
    while let Some(s) = src {
        let text = s.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        src = s.source();
    }
    out
}
