//! Ground Truth semantic-segmentation, the domain: wire types, labels, the mask codec, the
//! vote, pre-annotation, batch consolidation and object stores. The Lambda binaries and the
//! `gtseg` tool are thin shells around [`service::Service`].
//!
//! Data flows one way: event JSON → [`event`] wire types → [`pre`] / [`consolidate`]
//! (using [`labels`], [`mask`], [`vote`]) → [`store`].

pub mod config;
pub mod consolidate;
pub mod event;
pub mod labels;
pub mod mask;
pub mod pre;
pub mod service;
pub mod store;
pub mod uri;
pub mod vote;

pub use config::Config;
pub use service::{EventKind, Service, ServiceError, report};
pub use store::{AnyStore, LocalStore, ObjectStore, S3Store};
