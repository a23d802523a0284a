//! audit (to be implemented)
