//! standin (to be implemented)
