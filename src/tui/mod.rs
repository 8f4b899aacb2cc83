//! The dashboard, as a pure function of state: [`app::App`] holds everything shown and turns
//! inputs into driver commands; [`view`] draws an `App` with a [`theme::Theme`]; [`keymap`]
//! maps keys to actions under conditions and generates the bottom bar. The terminal run loop
//! (crossterm events, raw mode, the panic hook) lives outside: it only moves inputs in,
//! commands out, and calls `view::draw` when `App::take_dirty` says so.

pub mod app;
pub mod desk;
pub mod keymap;
pub mod number;
#[doc(hidden)]
pub mod sample;
pub mod theme;
mod toml_tree;
pub mod view;
