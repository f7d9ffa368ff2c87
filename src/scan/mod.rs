//! Scanning deliverables for passages that came from logged outputs (work in progress).
