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
