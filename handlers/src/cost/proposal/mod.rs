pub mod canvas;
pub mod render;
