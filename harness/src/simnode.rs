//! simnode (to be implemented)
