//! Middleware on every dialect: a deadline on request bodies, and the security headers
//! of every answer.

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{Payload, ServiceRequest, ServiceResponse};
use actix_web::error::PayloadError;
use actix_web::http::header::{self, HeaderValue};
use actix_web::middleware::Next;
use actix_web::web::Bytes;
use actix_web::HttpMessage;
use futures_util::Stream;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

/// A request body that fails with a timeout once `deadline` passes before its end
/// arrived: the handler answers with the dialect's error for an unreadable body, and
/// the connection, its body unread, is closed.
struct DeadlinePayload {
    inner: Payload,
    deadline: Pin<Box<tokio::time::Sleep>>,
    done: bool,
}

impl Stream for DeadlinePayload {
    type Item = Result<Bytes, PayloadError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.done {
            return Poll::Ready(None);
        }
        match Pin::new(&mut self.inner).poll_next(cx) {
            Poll::Ready(None) => {
                self.done = true;
                Poll::Ready(None)
            }
            Poll::Ready(item) => Poll::Ready(item),
            Poll::Pending => match self.deadline.as_mut().poll(cx) {
                Poll::Ready(()) => {
                    self.done = true;
                    Poll::Ready(Some(Err(PayloadError::Io(std::io::Error::new(
                        std::io::ErrorKind::TimedOut,
                        "request body not received in time",
                    )))))
                }
                Poll::Pending => Poll::Pending,
            },
        }
    }
}

/// Gives the request's body `timeout` from now to arrive in full.
pub async fn body_deadline(
    timeout: Duration,
    mut req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let inner = req.take_payload();
    let wrapped = DeadlinePayload {
        inner,
        deadline: Box::pin(tokio::time::sleep(timeout)),
        done: false,
    };
    req.set_payload(Payload::Stream {
        payload: Box::pin(wrapped),
    });
    next.call(req).await
}

/// `X-Content-Type-Options: nosniff` on every answer; `Cache-Control: no-store` and
/// `Pragma: no-cache` on every answer of the API (tokens among them, RFC 6749 §5.1),
/// not on Swagger UI's static files.
pub async fn security_headers(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let api = !req.path().starts_with("/swagger-ui/");
    // Handlers' errors arrive here as responses already.
    let mut res = next.call(req).await?.map_into_boxed_body();
    let headers = res.headers_mut();
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    if api {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    }
    Ok(res)
}
