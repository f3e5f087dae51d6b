//! Harness for end-to-end tests: real broker processes on loopback.
