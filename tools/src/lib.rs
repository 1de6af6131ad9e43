//! The strom command's tools (in progress).
