//! Races (docs/reliability.md, "Concurrency").
