//! Former home of the rate limits, now split into `crate::limits` (calls, stream messages,
//! login throttle), `crate::client_ip` and `crate::config`. These re-exports keep older paths
//! compiling; new code uses the new paths.

pub use crate::client_ip::{ClientIp, client_ip};
pub use crate::config::{Limit, RateLimitConfig};
pub use crate::limits::{
    FailureLimit, Limited, LoginThrottle, RateLimitChecked, RateLimits, StreamLimiter,
};
pub use crate::metrics::RATE_LIMITED;
