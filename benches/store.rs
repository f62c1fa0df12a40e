//! Store throughput benchmark.

fn main() {}
