//! Ground Truth semantic-segmentation, the domain: wire types, labels, the mask codec, the
//! fusion rules, pre-annotation, batch consolidation and object stores. The Lambda binaries and
//! the `gtseg` tool are thin shells around [`Service`].
//!
//! Data flows one way: event JSON → [`event`] wire types → pre-annotation ([`build_task`]) or
//! consolidation (class lists, class masks, the [`Fusion`] rules, the PNG codec) → an
//! [`ObjectStore`]. `docs/contract.md` in the repository describes the contract in full.
//!
//! The modules are private; this page lists what the binaries, the tests and the fuzz targets
//! use.

#![warn(missing_docs, unreachable_pub)]

mod category;
mod config;
mod consolidate;
pub mod event;
pub mod finished;
mod fusion;
mod catalog;
mod labels;
mod logs;
mod mask;
mod pre;
mod raster;
mod resolve;
mod service;
mod store;
mod uri;

pub use category::{Ballot, CategoryFit, Rule, Verdict, consolidate as consolidate_categories};
pub use config::{Algorithm, Config, ConfigError, ENV_HELP, Limits};
pub use consolidate::{
    BatchError, DISAGREEMENT_FOLDER, Exclusion, ImageCensus, InvalidId, MAX_FILE_NAME,
    MAX_RESPONSE_BYTES, OUTPUT_FOLDER, ParsedAnswer, REPORT_FOLDER, decode_answer_json,
    format_creation_date, job_name, object_file_name, parse_answer,
};
pub use fusion::{
    Census, Combinations, CrowdModel, Fused, Fusion, ImageVotes, MAX_BATCH_VOTES, Majority, VETO,
    Weighted,
};
#[cfg(feature = "s3")]
pub use catalog::SageMakerCatalog;
pub use catalog::{
    AnyCatalog, JobCatalog, JobDescription, JobError, JobErrorKind, SavedJobs, parse_job_arn,
};
pub use labels::{
    BACKGROUND, ClassList, FALLBACK_COLORS, LabelError, MAX_LABELS, Rgb, assign_palette,
};
pub use logs::Escaped;
pub use mask::{
    ColorLookup, Decoded, MAX_INTERLACED_FRAME, MaskError, decode_class_mask, encode_palette_png,
};
pub use pre::{SkipReason, build_task};
pub use raster::{ABSTAIN, ClassMask};
pub use resolve::{JobLabels, LabelsError, LabelsErrorKind, MAX_LABEL_CONFIG_BYTES};
pub use service::{EventKind, Service, ServiceError};
pub use store::{
    AnyStore, Guarded, LocalStore, ObjectReader, ObjectStore, PutOptions, StoreError,
    StoreErrorKind,
};
#[cfg(feature = "s3")]
pub use store::{DEFAULT_S3_TIMEOUT, S3Store};
pub use uri::{S3Uri, UriError};
