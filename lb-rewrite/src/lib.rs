//! Not written yet: see its issue.
#![forbid(unsafe_code)]
