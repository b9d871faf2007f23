//! How a command ended, as an exit status that scripts can trust (the table is in the
//! README): 0 when every line is labelled, or failed for a reason in the workers' own data
//! that its line names; [`INCOMPLETE`] when the command wrote its outputs but some lines
//! failed for another reason (an object that could not be read), which a rerun may cure;
//! 1 when it failed or refused; 2 for arguments clap refuses.

/// The exit status of a command that finished with lines to retry.
pub const INCOMPLETE: u8 = 3;

/// A command that wrote its outputs, but with lines that failed for a reason outside the
/// workers' data: what happened, and what to do.
#[derive(Debug)]
pub struct Incomplete(pub String);

impl std::fmt::Display for Incomplete {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Incomplete {}
