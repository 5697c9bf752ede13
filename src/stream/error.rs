//! Why following the streams stopped.

use std::path::{Path, PathBuf};

use handlers::PortError;
use thiserror::Error;

use super::filter_criteria;
use super::reader::NoStream;

/// Why following the streams stopped.
#[derive(Debug, Error)]
pub enum StreamError {
    #[error("{}: {source}", path.display())]
    File {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: not a checkpoints file: {source}", path.display())]
    Checkpoints {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error(transparent)]
    Service(#[from] PortError),
    #[error(transparent)]
    NoStream(#[from] NoStream),
    #[error(transparent)]
    Filter(#[from] filter_criteria::FilterError),
    #[error("shard {shard_id}: {source}")]
    Shard {
        shard_id: String,
        source: Box<StreamError>,
    },
}

impl StreamError {
    pub(super) fn file(path: &Path) -> impl FnOnce(std::io::Error) -> StreamError + '_ {
        move |source| StreamError::File {
            path: path.to_path_buf(),
            source,
        }
    }
}
