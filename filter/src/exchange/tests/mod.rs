//! Whole-request scenarios against the fake host.
