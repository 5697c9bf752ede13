//! A proposal as a document: its layout on the page ([`render`]), the drawing primitives and
//! embedded fonts ([`canvas`]), and where the finished PDF is stored ([`filename`]). The
//! `proposal-pdf` reaction (`reactions::proposal_pdf`) decides when one is made.

mod canvas;
pub(crate) mod filename;
pub mod render;
