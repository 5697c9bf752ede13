//! The last processed sequence number per shard, kept in a local file (written atomically,
//! fsync'd) so a restart resumes where the runner stopped.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::error::StreamError;
use crate::adapters::atomic_file::write_atomic;

/// Last processed sequence number per shard.
#[derive(Debug, Default, Serialize, Deserialize)]
pub(super) struct Checkpoints(BTreeMap<String, String>);

impl Checkpoints {
    /// The shard's last processed sequence number, if any.
    pub(super) fn get(&self, shard_id: &str) -> Option<&str> {
        self.0.get(shard_id).map(String::as_str)
    }

    pub(super) fn load(path: &Path) -> Result<Checkpoints, StreamError> {
        match std::fs::read_to_string(path) {
            Ok(text) => serde_json::from_str(&text).map_err(|source| StreamError::Checkpoints {
                path: path.to_path_buf(),
                source,
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Checkpoints::default()),
            Err(e) => Err(StreamError::file(path)(e)),
        }
    }

    /// Records `sequence` as the shard's last processed record and saves the file.
    pub(super) fn advance(
        &mut self,
        shard_id: &str,
        sequence: &str,
        path: &Path,
    ) -> Result<(), StreamError> {
        self.0.insert(shard_id.to_string(), sequence.to_string());
        self.save(path)
    }

    fn save(&self, path: &Path) -> Result<(), StreamError> {
        let text = serde_json::to_vec_pretty(self).map_err(|source| StreamError::Checkpoints {
            path: path.to_path_buf(),
            source,
        })?;
        write_atomic(path, &text).map_err(StreamError::file(path))
    }
}
