//! Test harness (filled in by the integration-test work).
