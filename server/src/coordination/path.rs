//! ZooKeeper-style node paths: `/`, `/brokers`, `/brokers/topics/foo`.
//!
//! A valid path is absolute, has no empty, `.` or `..` segments, no trailing
//! slash (except the root itself), no NUL byte, and at most
//! [`PATH_MAX_BYTES`] bytes. Validating once at the API boundary lets the
//! rest of the store split paths without further checks.

use super::error::CoordinationError;

/// The root path.
pub const ROOT: &str = "/";

/// Longest accepted path; bounds memory per node and per snapshot entry
/// (whose path length field is a u16).
pub const PATH_MAX_BYTES: usize = 1024;

/// Checks that `path` is a valid node path.
pub(crate) fn validate(path: &str) -> Result<(), CoordinationError> {
    let invalid = |reason| CoordinationError::InvalidPath {
        path: path.to_owned(),
        reason,
    };
    if path.len() > PATH_MAX_BYTES {
        return Err(invalid("longer than 1024 bytes"));
    }
    if !path.starts_with('/') {
        return Err(invalid("must start with '/'"));
    }
    if path == ROOT {
        return Ok(());
    }
    if path.contains('\0') {
        return Err(invalid("contains a NUL byte"));
    }
    for segment in path[1..].split('/') {
        match segment {
            "" => return Err(invalid("empty segment or trailing '/'")),
            "." | ".." => return Err(invalid("'.' and '..' segments are not allowed")),
            _ => {}
        }
    }
    Ok(())
}

/// The parent of a valid non-root path.
pub(crate) fn parent(path: &str) -> &str {
    debug_assert!(path != ROOT);
    match path.rfind('/') {
        Some(0) | None => ROOT,
        Some(index) => &path[..index],
    }
}

/// The last segment of a valid non-root path.
pub(crate) fn name(path: &str) -> &str {
    debug_assert!(path != ROOT);
    path.rsplit('/').next().unwrap_or(path)
}

/// Every ancestor of a valid path below the root, then the path itself:
/// `/a/b` gives `/a`, `/a/b`. The root gives nothing.
pub(crate) fn prefixes(path: &str) -> impl Iterator<Item = &str> {
    path.match_indices('/')
        .skip(1)
        .map(move |(index, _)| &path[..index])
        .chain((path != ROOT).then_some(path))
}

/// The path of child `name` of `parent`.
pub(crate) fn join(parent: &str, name: &str) -> String {
    if parent == ROOT {
        format!("/{name}")
    } else {
        format!("{parent}/{name}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_paths() {
        for path in ["/", "/a", "/brokers/topics/foo", "/a b/c-d_e.f", "/.x"] {
            assert!(validate(path).is_ok(), "{path}");
        }
    }

    #[test]
    fn invalid_paths() {
        for path in ["", "a", "/a/", "//a", "/a//b", "/a/./b", "/..", "/a\0b"] {
            assert!(
                matches!(validate(path), Err(CoordinationError::InvalidPath { .. })),
                "{path:?}"
            );
        }
        assert!(validate(&format!("/{}", "x".repeat(PATH_MAX_BYTES))).is_err());
    }

    #[test]
    fn parent_and_name() {
        assert_eq!(parent("/a"), "/");
        assert_eq!(parent("/a/b/c"), "/a/b");
        assert_eq!(name("/a"), "a");
        assert_eq!(name("/a/b/c"), "c");
    }

    #[test]
    fn prefixes_and_join() {
        assert_eq!(
            prefixes("/a/b/c").collect::<Vec<_>>(),
            ["/a", "/a/b", "/a/b/c"]
        );
        assert_eq!(prefixes("/a").collect::<Vec<_>>(), ["/a"]);
        assert_eq!(prefixes("/").count(), 0);
        assert_eq!(join("/", "x"), "/x");
        assert_eq!(join("/a", "x"), "/a/x");
    }
}
