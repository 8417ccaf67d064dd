//! The transactional functions that produce the events (DESIGN section 7):
//! orders (create, pay, fulfil, cancel, status) and users (sign up, log in).
//!
//! State lives in a store with conditional writes enforcing the legal state
//! machine; every state change writes its event into an outbox in the same
//! transaction, so stored state and emitted events never diverge. Events are
//! published right after the commit and, if that fails, by the relay.

#[cfg(feature = "aws")]
pub mod dynamo;
#[cfg(feature = "lambda")]
pub mod http;
pub mod ids;
#[cfg(feature = "aws")]
pub mod kinesis;
pub mod memory;
pub mod model;
pub mod outbox;
pub mod payments;
pub mod ports;
pub mod service;

pub use ids::Ids;
pub use memory::{MemoryStore, MemoryStream};
pub use model::{Order, OrderStatus, User};
pub use payments::LocalProvider;
pub use service::{ApiRequest, ApiResponse, OrderService, Route};
