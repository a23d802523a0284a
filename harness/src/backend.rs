//! backend (to be implemented)
