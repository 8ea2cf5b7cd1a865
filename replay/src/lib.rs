//! Not written yet: see its issue.
