//! The live service end to end: the real binary against real MariaDB, a real SQS server (moto)
//! and the Megazord stand-in, on a simulated clock.

mod live;
mod shared_starts;
mod subscription_race;
