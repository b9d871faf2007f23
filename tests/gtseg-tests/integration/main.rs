//! Integration tests: one binary, a module per area (ripgrep's layout).
//!
//! - `contract`: every file of `events/` round-trips through the wire types, and `events/` is
//!   exactly what the fixture code builds.
//! - `replay`: the `gtseg` binary on every sample event, with a local store.
//! - `consolidation`: the contract's rules and bad input, through the service, over a local store.
//! - `s3`: `gtseg replay` against moto's S3 server (SSE-KMS, assumed roles, S3 failures).
//! - `faults`: faults between the function and S3 injected by a proxy in front of moto.
//! - `finished`: `gtseg job` on finished jobs: local, on moto, and through the Lambda emulator.
//! - `crowd`: weighted fusion against majority on synthetic crowds with a known truth.
//! - `anchors`: weighted fusion against the majority and SimpleITK's STAPLE, every crowd.
//! - `oracle`: the vote against an independent numpy + Pillow implementation.
//! - `job_request`: `gtseg job-request` validated by botocore's CreateLabelingJob model.
//! - `jobs`: a job's labels from the event, the pin, the job (DescribeLabelingJob) or the
//!   workers, never from another job.
//! - `templates`: the worker task templates rendered by Liquid and parsed as HTML.
//! - `verification`: label verification: the output line, the category rule, mixed batches.
//! - `review`: `gtseg review`'s report as files and in headless Chromium.
//! - `safety`: the job tools never write over an input, never drop a label in silence, take
//!   one lock per output, and end with an exit status a script can trust.
//! - `export`: `gtseg export` read back by Datumaro, pycocotools and Hugging Face `datasets`.
//! - `lambda`: both binaries under cargo-lambda's Lambda runtime emulator, over moto.

#![allow(clippy::unwrap_used)] // Test code: a panic is a failed test.

mod anchors;
mod consolidation;
mod contract;
mod crowd;
mod export;
mod faults;
mod finished;
mod job_request;
mod jobs;
mod lambda;
mod oracle;
mod replay;
mod review;
mod s3;
mod safety;
mod templates;
mod verification;
