//! Crash-safe files: write to a temporary name, fsync, rename into place, fsync the folder.
//! A reader sees the old file or the new one, never half of one. Every file the worker
//! replaces (the embedded state, the stream runner's checkpoints) is written this way.

use std::fs::{self, File};
use std::io::{self, BufWriter, Write};
use std::path::Path;

/// Replace `path` with `bytes` atomically.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    write_atomic_with(path, |file| file.write_all(bytes)).map(|_| ())
}

/// Replace `path` atomically with what `write` writes (buffered, so a large file need not be
/// held in memory first); returns its length.
pub fn write_atomic_with(
    path: &Path,
    write: impl FnOnce(&mut dyn Write) -> io::Result<()>,
) -> io::Result<u64> {
    let dir = path.parent().unwrap_or(Path::new("."));
    fs::create_dir_all(dir)?;
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("file");
    let tmp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
    let length = {
        let mut file = BufWriter::with_capacity(1 << 20, File::create(&tmp)?);
        write(&mut file)?;
        let file = file.into_inner().map_err(|e| e.into_error())?;
        file.sync_all()?;
        file.metadata()?.len()
    };
    fs::rename(&tmp, path)?;
    sync_dir(dir)?;
    Ok(length)
}

/// Make a rename or a new file in `dir` durable.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}
