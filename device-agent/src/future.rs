//! [`BoxFuture`], the boxed future every object-safe async trait of the agent
//! returns ([`crate::Executor`], [`crate::phone::Phone`], the mark sinks); it
//! lives apart so those traits' modules need not import one another for it.

use std::future::Future;
use std::pin::Pin;

/// A boxed, sendable future: what [`crate::Executor`]'s methods return, so that the
/// trait stays object-safe (`Arc<dyn Executor>`).
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;
