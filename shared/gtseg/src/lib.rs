//! Ground Truth semantic-segmentation, the domain: wire types, labels, the mask codec, the
//! fusion rules, pre-annotation, batch consolidation, a finished job's objects, and object
//! stores. The Lambda binaries and the `gtseg` tool are thin shells around [`Service`] and
//! the functions below; this crate owns every format they read or write.
//!
//! Data flows one way: event JSON → [`event`] wire types → the job's labels → pre-annotation
//! or consolidation (class masks, the fusion rules, the PNG codec) → an [`ObjectStore`].
//! `docs/contract.md` in the repository describes the contract in full, and
//! `docs/architecture.md` the modules.
//!
//! The modules are private; what the binaries and the tests use is re-exported here, by
//! concern. What only the fuzz targets need is in [`fuzzing`].

#![warn(missing_docs, unreachable_pub)]

#[cfg(feature = "s3")]
mod aws;
mod catalog;
mod category;
mod config;
mod consolidate;
pub mod event;
#[cfg(feature = "export")]
pub mod export;
pub mod finished;
mod fusion;
mod job_request;
mod labels;
mod location;
mod logs;
mod mask;
mod pre;
mod raster;
mod resolve;
mod service;
mod store;
mod uri;

// The two functions on JSON events, and their settings.
pub use config::{Algorithm, Config, ConfigError, ENV_HELP, Limits, UnknownAlgorithm};
pub use service::{EventKind, Service, ServiceError};

// Where objects and files live, and the AWS set-up.
#[cfg(feature = "s3")]
pub use aws::{Aws, AwsError, QUIET_AWS_LOGS};
pub use location::{Location, LocationError, ReadError, read_file};
pub use store::{
    AnyStore, Guarded, LocalStore, ObjectReader, ObjectStore, PutOptions, StoreError,
    StoreErrorKind,
};
#[cfg(feature = "s3")]
pub use store::{DEFAULT_S3_TIMEOUT, S3Store};
pub use uri::{S3Uri, UriError};

// Labeling jobs: their descriptions, their labels, and requests to create them.
#[cfg(feature = "s3")]
pub use catalog::SageMakerCatalog;
pub use catalog::{
    AnyCatalog, JobCatalog, JobDescription, JobError, JobErrorKind, MAX_SAVED_JOB_BYTES,
    SavedJobError, SavedJobs, parse_job_arn, same_job,
};
pub use job_request::{
    CONTENT_CLASSIFIERS, JobRequestError, JobRequestInput, Notice, TaskType, UnknownTaskType,
    arns_from_stack_outputs, build_job_request,
};
pub use labels::{BACKGROUND, ClassList, FALLBACK_COLORS, LabelError, MAX_LABELS, Rgb};
pub use resolve::{
    JobLabels, LabelsError, LabelsErrorKind, MAX_LABEL_CONFIG_BYTES, read_label_config,
};

// What consolidation writes and answers, and why it refuses.
pub use consolidate::{
    BatchError, DISAGREEMENT_FOLDER, Exclusion, ExtrasError, ImageCensus, InvalidId, MAX_FILE_NAME,
    MAX_RESPONSE_BYTES, OUTPUT_FOLDER, REPORT_FOLDER, format_creation_date, job_name, with_extras,
};
pub use mask::{
    EncodeError, IndexImage, MAX_INTERLACED_FRAME, MaskError, decode_index_png, encode_grey_png,
};
pub use pre::SkipReason;

// The weighted fusion's crowd model, fitted over more than one batch (a whole job).
pub use fusion::{Combinations, CrowdModel, ImageVotes, MAX_BATCH_VOTES};

/// The pure pieces that the fuzz targets (`shared/gtseg-fuzz`) drive directly, below the
/// [`Service`]: the answer and event parsers, the mask codec, the rules. Neither function
/// needs them from outside; they are here so that the fuzzers reach every parser without the
/// rest of the API growing for them.
pub mod fuzzing {
    pub use crate::category::{
        Ballot, CategoryFit, Rule, Verdict, consolidate as consolidate_categories,
    };
    pub use crate::consolidate::{
        ParsedAnswer, decode_answer_json, object_file_name, parse_answer,
    };
    pub use crate::fusion::{Census, Fused, Fusion, Majority, Weighted};
    pub use crate::labels::assign_palette;
    pub use crate::logs::Escaped;
    pub use crate::mask::{ColorLookup, Decoded, decode_class_mask, encode_palette_png};
    pub use crate::pre::build_task;
    pub use crate::raster::{ABSTAIN, ClassMask};
}
