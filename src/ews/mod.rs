//! The EWS SOAP layer: the envelope writer, one module per operation under [`ops`], and the
//! reader of responses (SOAP faults and per-message results).
//!
//! Requests are written by hand as text: each operation is a few fixed elements, and the
//! unit tests compare them with minified expected documents; `tests/schema.rs` validates every
//! request the tool can build against Microsoft's schema.

pub mod envelope;
pub mod ops;
pub mod response;

pub use envelope::{Envelope, RequestContext, ServerVersion};
pub use response::{BodyError, ResponseClass, ResponseMessage, SoapFault, SoapResponse};

pub const SOAP_NS: &str = "http://schemas.xmlsoap.org/soap/envelope/";
pub const MESSAGES_NS: &str = "http://schemas.microsoft.com/exchange/services/2006/messages";
pub const TYPES_NS: &str = "http://schemas.microsoft.com/exchange/services/2006/types";

/// An EWS operation the probe can send.
pub trait Operation {
    /// The operation's name in `Services.wsdl` (also the `SOAPAction` suffix).
    const NAME: &'static str;
    /// Whether the operation changes nothing in the mailbox; only these are ever retried.
    const READ_ONLY: bool;
    /// Writes the `soap:Body` child element (prefixes `m:` and `t:`).
    fn write_body(&self, out: &mut String);
}

/// Escapes text and attribute values for XML.
pub(crate) fn esc(s: &str) -> std::borrow::Cow<'_, str> {
    quick_xml::escape::escape(s)
}
