//! Crash-safe files: write to a temporary name, fsync, rename into place, fsync the folder.
//! A reader sees the old file or the new one, never half of one.

use std::fs::{self, File};
use std::io::{self, BufWriter, Write};
use std::path::{Component, Path, PathBuf};

/// Replace `path` with `bytes` atomically.
pub(super) fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    write_atomic_with(path, |file| file.write_all(bytes)).map(|_| ())
}

/// Replace `path` atomically with what `write` writes (buffered, so a large file need not be
/// held in memory first); returns its length.
pub(super) fn write_atomic_with(
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
pub(super) fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// `objects/<bucket>/<key>` under `root`, refusing anything that could leave it: S3 allows
/// keys such as `../x` or `/etc/passwd`, a file system must not follow them.
pub(super) fn object_path(root: &Path, bucket: &str, key: &str) -> Result<PathBuf, String> {
    let bucket_ok = (3..=63).contains(&bucket.len())
        && bucket
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.')
        && !bucket.starts_with('.')
        && !bucket.contains("..");
    if !bucket_ok {
        return Err(format!("unsafe or invalid bucket name {bucket:?}"));
    }
    let relative = Path::new(key);
    let key_ok = !key.is_empty()
        && !key.contains(['\0', '\\'])
        && !key
            .split('/')
            .any(|segment| segment.is_empty() || segment == "." || segment == "..")
        && relative
            .components()
            .all(|c| matches!(c, Component::Normal(_)));
    if !key_ok {
        return Err(format!(
            "unsafe object key {key:?}: keys with empty, '.' or '..' segments, a leading '/', backslashes or NUL cannot be stored as local files"
        ));
    }
    Ok(root.join("objects").join(bucket).join(relative))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn object_keys_cannot_escape_the_state_directory() {
        let root = Path::new("/state");
        assert_eq!(
            object_path(root, "docs-bucket", "proposals/est1/doc1.pdf").unwrap(),
            Path::new("/state/objects/docs-bucket/proposals/est1/doc1.pdf")
        );
        for key in [
            "../../etc/passwd",
            "/etc/passwd",
            "a//b",
            "a/./b",
            "a\\..\\b",
            "",
            "a\0b",
        ] {
            assert!(
                object_path(root, "docs-bucket", key).is_err(),
                "{key:?} must be refused"
            );
        }
        assert!(object_path(root, "../x", "k").is_err());
    }
}
